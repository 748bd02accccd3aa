package data

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func gpt2Tok(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := GPT2()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestEncodeKnownIDs checks ids against tiktoken's Python r50k_base (and
// HF's GPT2TokenizerFast, which agrees).
func TestEncodeKnownIDs(t *testing.T) {
	tok := gpt2Tok(t)
	cases := []struct {
		text string
		want []int32
	}{
		{"Hello world", []int32{15496, 995}},
		{" Hello", []int32{18435}},
		{"\n\n", []int32{628}},
		{"hello\n\nworld", []int32{31373, 198, 198, 6894}},
		{"", []int32{}},
		// Special tokens in text are ordinary text, never EOT.
		{"<|endoftext|>", []int32{27, 91, 437, 1659, 5239, 91, 29}},
	}
	for _, c := range cases {
		got := tok.Encode(c.text)
		if !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
		if slices.Contains(got, EOT) {
			t.Errorf("Encode(%q) produced EOT", c.text)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	tok := gpt2Tok(t)
	texts := []string{
		"Hello world",
		"日本語のテキストと中文文本",
		"emoji 🦀🚀 and flags 🇯🇵, combining é (e\u0301)",
		"tabs\tand\r\nCRLF   trailing spaces   \n",
		"func main() {\n\tfmt.Println(\"hi\")\n}\n",
		strings.Repeat("long line of words ", 30000), // > encodeSegment: cut and encoded in parts
	}
	for _, text := range texts {
		ids := tok.Encode(text)
		got, err := tok.Decode(ids)
		if err != nil || got != text {
			t.Errorf("Decode(Encode(%.40q)) = %.40q, %v", text, got, err)
		}
	}
	if s, err := tok.Decode([]int32{EOT}); err != nil || s != "<|endoftext|>" {
		t.Errorf("Decode(EOT) = %q, %v", s, err)
	}
	for _, bad := range []int32{-1, VocabSize, 1 << 20} {
		if _, err := tok.Decode([]int32{15496, bad}); err == nil || !strings.Contains(err.Error(), "outside GPT-2's vocabulary") {
			t.Errorf("Decode(%d): error %v", bad, err)
		}
	}
}

// TestEncodeLongTextMatchesWhole checks that cutting long text into
// segments (safeCut) gives exactly the tokens of encoding it whole.
func TestEncodeLongTextMatchesWhole(t *testing.T) {
	tok := gpt2Tok(t)
	var b strings.Builder
	for i := 0; b.Len() < 3*encodeSegment; i++ {
		b.WriteString([]string{"package main\n\n", "  indented line\n", "x\n\n\ny", "\tfunc f() {}\n", "end. \n", "日本\n"}[i%6])
	}
	text := b.String()
	whole := make([]int32, 0)
	for _, id := range tok.enc.EncodeOrdinary(text) {
		whole = append(whole, int32(id))
	}
	if got := tok.Encode(text); !slices.Equal(got, whole) {
		t.Fatalf("segmented encoding differs from whole-text encoding (%d vs %d tokens)", len(got), len(whole))
	}
}

func TestStreamDecoder(t *testing.T) {
	tok := gpt2Tok(t)
	for _, text := range []string{"🦀 crab, 日本語, ünïcödé", "plain ascii", "😀😁😂🤣😃😄"} {
		ids := tok.Encode(text)
		d := tok.NewStreamDecoder()
		var out strings.Builder
		partial := false
		for _, id := range ids {
			s, err := d.Write(id)
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(s) {
				t.Fatalf("%q: Write returned invalid UTF-8 %q", text, s)
			}
			if s == "" {
				partial = true
			}
			out.WriteString(s)
		}
		out.WriteString(d.Flush())
		if out.String() != text {
			t.Errorf("streamed %q, want %q", out.String(), text)
		}
		if strings.Contains(text, "😀") && !partial {
			t.Errorf("%q: expected an emoji split across tokens", text)
		}
	}
	// An unfinished character comes out of Flush as U+FFFD.
	d := tok.NewStreamDecoder()
	crab := tok.Encode("🦀")
	if s, _ := d.Write(crab[0]); s != "" {
		t.Fatalf("first byte(s) of a 4-byte character printed %q", s)
	}
	if s := d.Flush(); s != "\uFFFD" {
		t.Fatalf("Flush = %q, want U+FFFD", s)
	}
	if _, err := d.Write(VocabSize); err == nil {
		t.Fatal("Write accepted a token outside the vocabulary")
	}
}

func TestIncompleteTail(t *testing.T) {
	cases := []struct {
		b    string
		want int
	}{
		{"abc", 0}, {"a\xf0", 1}, {"a\xf0\x9f", 2}, {"a\xf0\x9f\xa6", 3}, {"a\xf0\x9f\xa6\x80", 0},
		{"\xe6\x97", 2}, {"\xc3", 1}, {"\x80\x80", 0}, {"\xff", 0}, {"", 0},
	}
	for _, c := range cases {
		if got := incompleteTail([]byte(c.b)); got != c.want {
			t.Errorf("incompleteTail(%q) = %d, want %d", c.b, got, c.want)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	tok := gpt2Tok(b)
	text := strings.Repeat("func (t *Tokenizer) Encode(text string) []int32 {\n\tout := make([]int32, 0, len(text)/3+1)\n}\n// Comments say why, not what.\n", 2000)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text)
	}
}
