package hub

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// Card is what a model card says of a published checkpoint of a run.
type Card struct {
	Repo    string
	Run     string
	Epoch   uint64 // the epoch the published state starts: the swarm's state after Epoch−1
	Tag     string
	License string // an HF license id; "other" when empty
	// Params and the model's shape.
	Params                                      int64
	NLayer, NHead, NEmbd, NPositions, VocabSize int
	// Data names the training data; TokensSeen is what the miners
	// reported training on through the epoch (0: unknown).
	Data       string
	TokensSeen int64
	// ValLoss is the held-out loss of the published state (NaN: not
	// evaluated), and ValTokens the held-out tokens it was measured on.
	ValLoss   float64
	ValTokens int
}

// ModelCard renders c as a HuggingFace model card: a README.md with HF's
// YAML metadata (license, library, pipeline, tags) and a body that says
// what the checkpoint is and how to load it.
func ModelCard(c Card) []byte {
	lic := c.License
	if lic == "" {
		lic = "other"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "---\nlicense: %s\nlibrary_name: transformers\npipeline_tag: text-generation\n", yamlScalar(lic))
	b.WriteString("tags:\n- gpt2\n- dtrain\n- decentralized-training\n- diloco\n")
	valid := !math.IsNaN(c.ValLoss) && !math.IsInf(c.ValLoss, 0)
	fmt.Fprintf(&b, "model-index:\n- name: %s\n  results:", yamlScalar(c.Repo))
	if valid {
		fmt.Fprintf(&b, "\n  - task:\n      type: text-generation\n    dataset:\n      name: %s\n      type: %s\n", yamlScalar("held-out "+c.Data), yamlScalar(c.Data))
		fmt.Fprintf(&b, "    metrics:\n    - type: loss\n      name: held-out loss (nats/token)\n      value: %.4f\n", c.ValLoss)
	} else {
		b.WriteString(" []\n")
	}
	// dtrain's own record of the checkpoint, for programs.
	fmt.Fprintf(&b, "dtrain:\n  run_id: %s\n  epoch: %d\n  tag: %s\n", yamlScalar(c.Run), c.Epoch, yamlScalar(c.Tag))
	if c.Data != "" {
		fmt.Fprintf(&b, "  training_data: %s\n", yamlScalar(c.Data))
	}
	if c.TokensSeen > 0 {
		fmt.Fprintf(&b, "  tokens_seen: %d\n", c.TokensSeen)
	}
	if valid {
		fmt.Fprintf(&b, "  held_out_loss: %.6f\n  held_out_tokens: %d\n", c.ValLoss, c.ValTokens)
	}
	b.WriteString("---\n\n")
	fmt.Fprintf(&b, "# %s: run `%s`, epoch %d\n\n", c.Repo, c.Run, c.Epoch)
	b.WriteString("A GPT-2 trained from scratch by a [dtrain](https://github.com/dtrain-dev/dtrain) swarm: miners train locally and ")
	b.WriteString("average their updates peer to peer; this checkpoint is the swarm's state after the run's epoch ")
	fmt.Fprintf(&b, "%d, published by one of its validators.\n\n", c.Epoch-min(c.Epoch, 1))
	b.WriteString("| | |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| run id | `%s` |\n| epoch | %d |\n| tag | `%s` |\n", c.Run, c.Epoch, c.Tag)
	fmt.Fprintf(&b, "| parameters | %d (%d layers, %d heads, %d wide, context %d, vocabulary %d) |\n",
		c.Params, c.NLayer, c.NHead, c.NEmbd, c.NPositions, c.VocabSize)
	data := c.Data
	if data == "" {
		data = "not known to the validator"
	}
	fmt.Fprintf(&b, "| training data | %s |\n", mdCell(data))
	if c.TokensSeen > 0 {
		fmt.Fprintf(&b, "| tokens seen | %d (as the miners reported them) |\n", c.TokensSeen)
	}
	if valid {
		fmt.Fprintf(&b, "| held-out loss | %.4f nats/token (perplexity %.1f), the validator's evaluation on %d held-out tokens |\n",
			c.ValLoss, math.Exp(c.ValLoss), c.ValTokens)
	}
	b.WriteString("\n## Use\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n")
	fmt.Fprintf(&b, "model = AutoModelForCausalLM.from_pretrained(%q, revision=%q)\n", c.Repo, c.Tag)
	b.WriteString("tokenizer = AutoTokenizer.from_pretrained(\"gpt2\")  # dtrain trains on GPT-2's tokenizer\n```\n\n")
	b.WriteString("`miner_state.bin` is the swarm's whole state (parameters and outer momentum) that dtrain miners load to join the run.\n")
	return b.Bytes()
}

// yamlScalar quotes s for YAML when it is not a plain word.
func yamlScalar(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r)) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// mdCell keeps s inside one Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}
