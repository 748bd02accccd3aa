// Package state is a training state as peers share it: one blob, whose
// layout Snapshot defines, that donors serve in byte ranges and a joiner
// fetches from several donors in parallel, verifying it chunk by chunk and
// as a whole, and surviving donors that fail, refuse, stall or lie.
//
// A Snapshot is a miner's state at the start of an epoch (parameters,
// step, and the outer momentum or AdamW state its sync mode shares),
// encoded to the same bytes by every miner that holds it and decoded only
// when all of it is well-formed and finite. Donor and Fetch treat the blob
// as opaque bytes named by an Offer: run, epoch, the blob's hash (Hash:
// the root of a hash tree over its 64 KiB pieces, bound to its size) and
// its size. Miners gossip their Offer; a joiner picks the donors
// offering the state it wants and calls Fetch.
//
// Wire protocol, version 1. One stream carries one request and its reply;
// every frame is a netx.Message.
//
//	joiner → donor  range{hash [32]byte, offset u64, length u32}   type 1
//	                manifest{hash [32]byte, chunk u32}             type 2
//	donor → joiner  data{bytes}, frames until length bytes         type 3
//	                manifest{chunk u32, count u32, node [count][32]byte}    type 4
//	                refused{code u8, reason}                       type 5
//
// A range is at most MaxRequest bytes. Refusal codes say whether to try
// again (busy: the donor is serving its MaxConcurrent downloads) or not
// (not found, bad request). A manifest is the level of the blob's hash
// tree whose nodes each cover one chunk (tree.go): a joiner checks the
// first one it gets against the hash it wants, drops a donor whose
// manifest does not hash to it, checks each chunk against the manifest as
// it arrives (dropping a donor that serves wrong bytes), and checks the
// whole blob's hash at the end. No manifest is chosen by vote.
package state
