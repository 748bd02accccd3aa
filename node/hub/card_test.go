package hub

import (
	"math"
	"strings"
	"testing"
)

// A model card has HF's YAML metadata first and says what the checkpoint
// is and how to load its tag.
func TestModelCard(t *testing.T) {
	c := string(ModelCard(Card{Repo: "org/model", Run: "r1", Epoch: 8, Tag: "r1.8", License: "apache-2.0", Params: 124,
		NLayer: 2, NHead: 2, NEmbd: 128, NPositions: 128, VocabSize: 50257, Data: "builtin:gosrc | x", TokensSeen: 1000,
		ValLoss: 5.25, ValTokens: 4096}))
	for _, want := range []string{"---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n- gpt2\n",
		"| epoch | 8 |", "| tokens seen | 1000", "| held-out loss | 5.2500", `from_pretrained("org/model", revision="r1.8")`,
		`builtin:gosrc \| x`, "after the run's epoch 7", "dtrain:\n  run_id: r1\n  epoch: 8\n  tag: r1.8\n", "  tokens_seen: 1000\n",
		"  held_out_loss: 5.250000\n", "    - type: loss\n      name: held-out loss (nats/token)\n      value: 5.2500\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("card lacks %q:\n%s", want, c)
		}
	}
	bare := string(ModelCard(Card{Repo: "org/model", Run: "r1", Epoch: 1, Tag: "r1.1", License: "weird: yes", ValLoss: math.NaN()}))
	if !strings.Contains(bare, `license: "weird: yes"`) || strings.Contains(bare, "held-out loss") || strings.Contains(bare, "tokens seen") {
		t.Errorf("card without figures:\n%s", bare)
	}
}
