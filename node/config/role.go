package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"

	"github.com/BurntSushi/toml"
)

// schema is what one role's config file may hold: the keys of its struct
// type, less the keys the role refuses. A miner's config embeds the train
// config, and some of the trainer's keys mean nothing to a miner: rather
// than ignore them silently, LoadMiner rejects each by name with the
// reason, and the miner's template leaves them out.
type schema struct {
	name string // the role, for messages
	root reflect.Type
	// refused: dotted key → why the role does not read it.
	refused map[string]string
	// docs: dotted key or table → its meaning in this role, where that
	// differs from the doc tag (or sections entry) the types carry.
	docs map[string]string
	// sections: table → its meaning; nil: sectionDocs, the train config's.
	sections map[string]string
}

var (
	trainSchema     = schema{name: "train", root: reflect.TypeFor[Train]()}
	validatorSchema = schema{name: "validator", root: reflect.TypeFor[Validator](), sections: validatorSectionDocs}
	minerSchema     = schema{
		name: "miner",
		root: reflect.TypeFor[Miner](),
		refused: map[string]string{
			"train.checkpoint_every": "it checkpoints the state of every epoch it finishes (out_dir/miner_state.bin); delete the key",
			"train.keep_checkpoints": "it keeps one checkpoint, the state of its latest epoch (out_dir/miner_state.bin); delete the key",
			"train.eval_every":       "it evaluates held-out loss every swarm.eval_every epochs; set swarm.eval_every instead",
			"train.log_every":        "it logs one line per epoch; delete the key",
		},
		docs: map[string]string{
			"out_dir":            "the miner's checkpoint (out_dir/miner_state.bin), identity key and metrics.jsonl go here",
			"train":              "The miner's local training: how big a step is, how long to train, how much to evaluate.",
			"train.max_steps":    "local optimizer steps in the whole run (diloco inner steps or gradient steps); the cosine schedule ends here and the miner stops",
			"train.batch_tokens": "diloco: tokens per local optimizer step, which accumulation over micro-batches reaches (a multiple of micro_batch*seq_len); gradients mode accumulates to swarm.target_batch_size instead",
			"train.max_minutes":  "stop after the epoch in which this much wall time has passed in this process (every epoch's state is checkpointed); 0 = no limit",
			"train.eval_tokens":  "held-out tokens per evaluation (the same ones every time); swarm.eval_every says when",
			"metrics":            "Where the miner's typed events go besides the log: epochs, all-reduce rounds, state loads, errors.",
		},
	}
)

// known lists the keys the role reads, tables included, in file order.
func (s schema) known() []string {
	return slices.DeleteFunc(knownKeys("", s.root), func(k string) bool { _, ok := s.refused[k]; return ok })
}

// doc is the meaning of key in the role: its override, else the doc tag
// (fieldDoc) or, for a table, its sections (or sectionDocs) entry.
func (s schema) doc(key, fieldDoc string) string {
	if d, ok := s.docs[key]; ok {
		return d
	}
	if fieldDoc == "" {
		if s.sections != nil {
			return s.sections[key]
		}
		return sectionDocs[key]
	}
	return fieldDoc
}

// refusal is the error for a key the role refuses.
func (s schema) refusal(key string) *FieldError {
	return &FieldError{Key: key, Reason: "not read by a " + s.name + ": " + s.refused[key]}
}

// RolesFor lists, in the order of Roles, the roles whose config file has
// every key of the TOML file at path (a key a role refuses counts as one it
// lacks), so that a check under the wrong role can say which role the file
// is for. Values are not checked.
func RolesFor(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, tomlError(path, string(data), err)
	}
	var fit []string
	for _, s := range []schema{trainSchema, minerSchema, validatorSchema} {
		unknown, mistyped := checkTable("", raw, s.root, s)
		refusedMistyped := slices.ContainsFunc(mistyped, func(e *FieldError) bool { _, ok := s.refused[e.Key]; return ok })
		if len(unknown) == 0 && !refusedMistyped {
			fit = append(fit, s.name)
		}
	}
	return fit, nil
}
