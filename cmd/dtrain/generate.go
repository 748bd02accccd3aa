package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/sample"
	"github.com/dtrain-dev/dtrain/torch"
)

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "sample text from a checkpoint, streamed to stdout",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Required: true, Usage: "checkpoint directory, or a run's out_dir (its latest checkpoint)"},
			&cli.StringFlag{Name: "prompt", Usage: "text to continue (empty: start a new document)"},
			&cli.IntFlag{Name: "max-tokens", Value: 200, Usage: "tokens to generate"},
			&cli.Float64Flag{Name: "temperature", Value: 0.8, Usage: "0 = always the most likely token"},
			&cli.IntFlag{Name: "top-k", Value: 40, Usage: "sample among the k most likely tokens; 0 = all"},
			&cli.Float64Flag{Name: "top-p", Usage: "nucleus sampling threshold in (0, 1]; 0 = off"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "the same seed, prompt and checkpoint give the same text"},
			&cli.BoolFlag{Name: "stop-at-eot", Value: true, Usage: "stop at the end-of-text token"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N", EnvVars: []string{"DTRAIN_DEVICE"}},
		},
		Action: runGenerate,
	}
}

func runGenerate(c *cli.Context) error {
	if n := c.Int("max-tokens"); n < 1 {
		return fmt.Errorf("--max-tokens must be >= 1, got %d", n)
	}
	s, err := sample.New(c.Float64("temperature"), c.Int("top-k"), c.Float64("top-p"), c.Uint64("seed"))
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	m, err := loadCheckpoint(c)
	if err != nil {
		return err
	}
	defer m.Close()
	tok, err := data.GPT2()
	if err != nil {
		return err
	}
	ids := tok.Encode(c.String("prompt"))
	if len(ids) == 0 {
		ids = []int32{data.EOT}
	}
	fmt.Fprint(c.App.Writer, c.String("prompt"))
	return generate(c, m, s, tok, ids)
}

// generate extends ids one token at a time, writing each as soon as its
// text is complete. Without a KV cache each token costs a forward pass over
// the context (at most n_positions tokens).
func generate(c *cli.Context, m *torch.Model, s *sample.Sampler, tok *data.Tokenizer, ids []int32) error {
	w, ctxLen := c.App.Writer, m.Config().NPositions
	vocab := min(m.Config().VocabSize, data.VocabSize) // padded vocabularies never emit pad ids
	dec := tok.NewStreamDecoder()
	for i := 0; i < c.Int("max-tokens"); i++ {
		window := ids[max(0, len(ids)-ctxLen):]
		logits, err := m.Logits(torch.Batch{X: window, B: 1, T: len(window)}, true)
		if err != nil {
			return err
		}
		next, err := s.Next(logits[:vocab])
		if err != nil {
			return err
		}
		if next == data.EOT && c.Bool("stop-at-eot") {
			break
		}
		ids = append(ids, next)
		text, err := dec.Write(next)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, dec.Flush()+"\n")
	return err
}
