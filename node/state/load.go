package state

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dtrain-dev/dtrain/netx"
)

// Protocol is the stream protocol on which the peers of run serve (Donor)
// and fetch (Fetch) the run's state.
func Protocol(run string) protocol.ID { return netx.Protocol(run, "state") }

// Load fetches run's state of epoch whose blob hashes to hash from donors
// (peer ids; ones that do not parse are skipped) on Protocol(run), and
// decodes it as a state of mode for numel parameters. It returns the
// snapshot, the blob it was decoded from (the caller may offer it again)
// and how the fetch went. The blob's size is fixed by (mode, numel) before
// anything is downloaded, so a donor cannot make it allocate more; a blob
// whose hash matches but that is not a well-formed, finite state of
// epoch is refused. Memory: the blob and the decoded snapshot, each about
// the state's size.
func Load(ctx context.Context, h netx.Host, run string, epoch uint64, hash [32]byte, donors []string, mode Mode, numel int64, opts FetchOptions) (Snapshot, []byte, FetchStats, error) {
	want := Offer{Run: run, Epoch: epoch, Hash: hash, Size: SnapshotSize(mode, numel)}
	ids := make([]peer.ID, 0, len(donors))
	for _, s := range donors {
		if id, err := peer.Decode(s); err == nil {
			ids = append(ids, id)
		}
	}
	blob, stats, err := Fetch(ctx, h, Protocol(run), want, ids, opts)
	if err != nil {
		return Snapshot{}, nil, stats, err
	}
	s, err := UnmarshalSnapshot(blob, mode, numel)
	if err == nil && s.Epoch != epoch {
		err = fmt.Errorf("the donors' state is of epoch %d, not %d", s.Epoch, epoch)
	}
	if err != nil {
		return Snapshot{}, nil, stats, err
	}
	return s, blob, stats, nil
}
