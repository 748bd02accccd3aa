package data

import (
	"iter"

	"github.com/dtrain-dev/dtrain/torch"
)

// Windows cuts tokens into non-overlapping windows of seq+1 tokens, window
// i being tokens[i·seq : i·seq+seq+1] (consecutive windows share one
// token), with x the window without its last token and y without its
// first, and yields them batch windows at a time (the last batch may be
// smaller). Only full windows are used.
func Windows(tokens []int32, seq, batch int) iter.Seq[torch.Batch] {
	return func(yield func(torch.Batch) bool) {
		if seq < 1 || batch < 1 {
			return
		}
		n := WindowCount(len(tokens), seq)
		for w := 0; w < n; w += batch {
			b := torch.Batch{B: min(batch, n-w), T: seq}
			b.X, b.Y = make([]int32, 0, b.B*seq), make([]int32, 0, b.B*seq)
			for i := w; i < w+b.B; i++ {
				win := tokens[i*seq : i*seq+seq+1]
				b.X = append(b.X, win[:seq]...)
				b.Y = append(b.Y, win[1:]...)
			}
			if !yield(b) {
				return
			}
		}
	}
}

// WindowCount is the number of full windows Windows yields for n tokens.
func WindowCount(n, seq int) int {
	if n < seq+1 || seq < 1 {
		return 0
	}
	return (n - 1) / seq
}
