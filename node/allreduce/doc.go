// Package allreduce averages a flat float32 vector across a group of peers
// with a butterfly all-reduce: the vector is cut into one contiguous span
// per reducing member, sized from measured bandwidth (Spans), every peer
// streams its values for each span to the span's owner in parts
// (reduce-scatter), and each owner streams the weighted mean back
// (all-gather). The owner's rule may instead be a robust one (Aggregation:
// a coordinate-wise trimmed mean, or centered clipping), deterministic as
// the mean is, so that a member sending outliers moves the result little.
//
// Each part travels compressed by a Codec: none (exact float32), fp16,
// bf16, or blockwise int8, each with a documented per-element error bound
// (Codec.Bound) that tests of the whole round can assert against. A sender
// may keep an ErrorFeedback so that what int8 drops in one round is sent in
// the next instead of accumulating as bias. Every received part is decoded
// by a decoder that checks its length and rejects non-finite values before
// anything is averaged.
//
// A round may be committed (commit.go): each contributor encodes its vector
// once, before the group forms, and announces a Merkle root of the encoded
// chunks with its Ready; every owner checks each part it receives against
// that root before decoding it, excludes a member whose part does not
// match (a Fault), and an auditor later checks the full vector fetched from
// the member against the same root, so what is audited is what was
// averaged, and every owner averaged chunks of one and the same vector.
package allreduce
