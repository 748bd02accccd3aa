package data

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// GPT-2's vocabulary: 50,256 BPE tokens plus <|endoftext|>.
const (
	EOT       int32 = 50256 // <|endoftext|>, the document separator
	VocabSize       = 50257
)

// TokenizerID names the tokenizer in manifests and cache keys.
const TokenizerID = "gpt2/r50k_base"

// encodeSegment is the longest text Encode hands to the BPE at once: the
// BPE's regex pass holds a rune slice and a match list for its whole input,
// so long documents are cut (where tokenization cannot change, see safeCut)
// to bound that memory.
const encodeSegment = 256 << 10

// Tokenizer is GPT-2's byte-level BPE (tiktoken's r50k_base, shipped in the
// binary, no download). It is safe for concurrent use.
type Tokenizer struct {
	enc    *tiktoken.Tiktoken
	pieces [VocabSize]string // the bytes of each token, for decoding
}

var gpt2 = sync.OnceValues(func() (*Tokenizer, error) {
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
	enc, err := tiktoken.GetEncoding(tiktoken.MODEL_R50K_BASE)
	if err != nil {
		return nil, fmt.Errorf("load GPT-2 tokenizer: %w", err)
	}
	t := &Tokenizer{enc: enc}
	for id := range VocabSize {
		t.pieces[id] = enc.Decode([]int{id})
		if t.pieces[id] == "" {
			return nil, fmt.Errorf("load GPT-2 tokenizer: token %d has no bytes", id)
		}
	}
	return t, nil
})

// GPT2 returns the GPT-2 tokenizer, loading it on the first call.
func GPT2() (*Tokenizer, error) { return gpt2() }

// Encode tokenizes text. Special tokens are not interpreted: the characters
// "<|endoftext|>" in text become ordinary tokens, never EOT, so data cannot
// forge document boundaries. Invalid UTF-8 is read as U+FFFD, as Python's
// str would.
func (t *Tokenizer) Encode(text string) []int32 {
	out := make([]int32, 0, len(text)/3+1)
	for len(text) > 0 {
		n := len(text)
		if n > encodeSegment {
			n = safeCut(text, encodeSegment)
		}
		for _, id := range t.enc.EncodeOrdinary(text[:n]) {
			out = append(out, int32(id))
		}
		text = text[n:]
	}
	return out
}

// Decode returns the bytes of ids as a string (EOT is "<|endoftext|>"). A
// token may hold part of a UTF-8 character, so decoding a slice that cuts
// one can give invalid UTF-8; StreamDecoder buffers such parts instead.
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	var b strings.Builder
	for i, id := range ids {
		if id < 0 || id >= VocabSize {
			return "", fmt.Errorf("decode: token %d at position %d is outside GPT-2's vocabulary [0, %d)", id, i, VocabSize)
		}
		b.WriteString(t.pieces[id])
	}
	return b.String(), nil
}

// safeCut returns a cut point in (0, max] for text (len(text) > max) such
// that encoding text[:cut] and text[cut:] separately gives the same tokens
// as encoding text whole. With GPT-2's split regex that holds after a
// newline that follows and precedes a printable non-space ASCII byte: no
// pre-token crosses such a newline, and "\n" before a non-space is a
// pre-token of its own either way. Without such a point it falls back to
// the last newline, then to a UTF-8 character boundary (tokens near the cut
// may then differ from whole-text encoding; the text is never altered, and
// a valid UTF-8 text is cut into valid UTF-8 parts).
func safeCut[T ~string | ~[]byte](text T, max int) int {
	isWord := func(c byte) bool { return c > ' ' && c < 0x7f }
	lastNL := -1
	for i := max - 1; i > 0; i-- {
		if text[i] != '\n' {
			continue
		}
		if lastNL < 0 {
			lastNL = i
		}
		if isWord(text[i-1]) && isWord(text[i+1]) {
			return i + 1
		}
	}
	if lastNL >= 0 {
		return lastNL + 1
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(text[i]) {
			return i
		}
	}
	return max
}

// StreamDecoder turns tokens into text one at a time, as `dtrain generate`
// prints them: a character split across tokens is held back until complete.
type StreamDecoder struct {
	t   *Tokenizer
	buf []byte // bytes not yet returned: an incomplete UTF-8 sequence
}

// NewStreamDecoder returns a decoder with nothing buffered.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Write adds one token and returns the text it completed, which may be ""
// while a multi-byte character is still partial. Bytes that can never form
// a character are returned as U+FFFD.
func (d *StreamDecoder) Write(id int32) (string, error) {
	if id < 0 || id >= VocabSize {
		return "", fmt.Errorf("decode: token %d is outside GPT-2's vocabulary [0, %d)", id, VocabSize)
	}
	d.buf = append(d.buf, d.t.pieces[id]...)
	keep := incompleteTail(d.buf)
	done := d.buf[:len(d.buf)-keep]
	s := strings.ToValidUTF8(string(done), "\uFFFD")
	d.buf = append(d.buf[:0], d.buf[len(done):]...)
	return s, nil
}

// Flush returns what is still buffered (a character that never completed,
// as U+FFFD) and empties the buffer.
func (d *StreamDecoder) Flush() string {
	s := strings.ToValidUTF8(string(d.buf), "\uFFFD")
	d.buf = d.buf[:0]
	return s
}

// incompleteTail is the length of the suffix of b that is the valid start
// of a UTF-8 character still missing bytes (0 if there is none).
func incompleteTail(b []byte) int {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(b); k++ {
		c := b[len(b)-k]
		if !utf8.RuneStart(c) {
			continue // a continuation byte: look further back
		}
		var need int
		switch {
		case c&0xE0 == 0xC0:
			need = 2
		case c&0xF0 == 0xE0:
			need = 3
		case c&0xF8 == 0xF0:
			need = 4
		default:
			return 0 // ASCII or an invalid lead byte: nothing to wait for
		}
		if k < need && !utf8.FullRune(b[len(b)-k:]) {
			return k
		}
		return 0
	}
	return 0
}
