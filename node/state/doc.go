// Package state is a training state as peers share it: one blob, whose
// layout Snapshot defines, that donors serve in byte ranges and a joiner
// fetches from several donors in parallel, verifying it chunk by chunk and
// as a whole, and surviving donors that fail, refuse, stall or lie.
//
// A Snapshot is a miner's state at the start of an epoch (parameters,
// step, and the outer momentum or AdamW state its sync mode shares),
// encoded to the same bytes by every miner that holds it and decoded only
// when all of it is well-formed and finite. Donor and Fetch treat the blob
// as opaque bytes named by an Offer: run, epoch, the SHA-256 of the blob
// and its size. Miners gossip their Offer; a joiner picks the donors
// offering the state it wants and calls Fetch.
//
// Wire protocol, version 1. One stream carries one request and its reply;
// every frame is a netx.Message.
//
//	joiner → donor  range{hash [32]byte, offset u64, length u32}   type 1
//	                manifest{hash [32]byte, chunk u32}             type 2
//	donor → joiner  data{bytes}, frames until length bytes         type 3
//	                manifest{chunk u32, count u32, sha256 [count][32]byte}  type 4
//	                refused{code u8, reason}                       type 5
//
// A range is at most MaxRequest bytes. Refusal codes say whether to try
// again (busy: the donor is serving its MaxConcurrent downloads) or not
// (not found, bad request). The manifest lets a joiner check each chunk as
// it arrives and drop a donor that serves wrong bytes; donors whose
// manifest disagrees with the majority are not used, and the whole-blob
// hash is checked at the end regardless, so a wrong majority makes Fetch
// fail with ErrHashMismatch rather than return wrong bytes.
package state
