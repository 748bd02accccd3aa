package matchmaking

import "github.com/dtrain-dev/dtrain/node/allreduce"

// commitRound makes cfg a committed round when o asks for one: the members'
// agreed roots, checked in the scope of the group's run and epoch, spans on
// chunk boundaries and a part size that is a whole number of chunks.
// Every member derives the same spans and part size from the same group.
func (g Group) commitRound(cfg *allreduce.RoundConfig, o RoundOptions) {
	chunk := o.CommitChunk
	if chunk == 0 && o.Contribution != nil {
		chunk = o.Contribution.Layout().Chunk
	}
	if chunk <= 0 {
		return
	}
	for i, mb := range g.Members {
		cfg.Group.Members[i].Commit = mb.Commit
	}
	cfg.Commit = allreduce.CommitConfig{Run: g.Run, Epoch: g.Epoch, Chunk: chunk}
	cfg.Contribution, cfg.Vector, cfg.Feedback = o.Contribution, nil, nil
	cfg.PartSize = (cfg.PartSize + chunk - 1) / chunk * chunk
	cfg.Spans = allreduce.AlignSpans(cfg.Spans, chunk, cfg.Len)
}
