package torch

import "fmt"

// Param is one tensor of a model's flat parameter buffer: its HF name,
// shape, and where its elements start in the buffer.
type Param struct {
	Name   string
	Shape  []int64
	Offset int64
}

// Numel is the number of elements of the tensor.
func (p Param) Numel() int64 {
	n := int64(1)
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Layout is the order of a GPT-2's tensors in the flat buffers, documented
// in native/dtorch.h: wte, wpe, then per layer ln_1, attn.c_attn,
// attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj (weights then biases), then ln_f.
// Conv1D weights are [in, out] as in HF checkpoints.
func Layout(c Config) []Param {
	e, inner := int64(c.NEmbd), int64(c.Inner())
	var ps []Param
	var off int64
	add := func(name string, shape ...int64) {
		p := Param{Name: name, Shape: shape, Offset: off}
		ps = append(ps, p)
		off += p.Numel()
	}
	add("wte.weight", int64(c.VocabSize), e)
	add("wpe.weight", int64(c.NPositions), e)
	for i := 0; i < c.NLayer; i++ {
		p := fmt.Sprintf("h.%d.", i)
		add(p+"ln_1.weight", e)
		add(p+"ln_1.bias", e)
		add(p+"attn.c_attn.weight", e, 3*e)
		add(p+"attn.c_attn.bias", 3*e)
		add(p+"attn.c_proj.weight", e, e)
		add(p+"attn.c_proj.bias", e)
		add(p+"ln_2.weight", e)
		add(p+"ln_2.bias", e)
		add(p+"mlp.c_fc.weight", e, inner)
		add(p+"mlp.c_fc.bias", inner)
		add(p+"mlp.c_proj.weight", inner, e)
		add(p+"mlp.c_proj.bias", e)
	}
	add("ln_f.weight", e)
	add("ln_f.bias", e)
	return ps
}

// NumParams is the length of the flat parameter buffer for c.
func NumParams(c Config) int64 {
	l := Layout(c)
	last := l[len(l)-1]
	return last.Offset + last.Numel()
}
