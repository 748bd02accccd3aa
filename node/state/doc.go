// Package state loads a training state from peers: donors serve byte
// ranges of the state blobs they offer, and a joiner fetches one blob from
// several donors in parallel, verifies it chunk by chunk and as a whole,
// and survives donors that fail, refuse, stall or lie.
//
// A state is an opaque blob (the miner serializes parameters, optimizer
// state and trainer state into it) named by an Offer: run, epoch, the
// SHA-256 of the blob and its size. Miners gossip their Offer; a joiner
// picks the donors offering the state it wants and calls Fetch.
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
