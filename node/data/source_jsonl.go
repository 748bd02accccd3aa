package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxJSONLLine is the longest JSONL line read: a longer line is an error
// (a file that is not JSONL, or one document too large to hold).
const MaxJSONLLine = 64 << 20

// jsonlSource yields the "text" field of each line of a JSONL file. Blank
// lines are skipped.
type jsonlSource struct {
	path  string
	r     *bufio.Reader
	close func() error
	pos   interface{ inputPos() int64 }
	line  int64
	max   int // MaxJSONLLine, smaller in tests
}

func newJSONLSource(path string, r io.Reader, closeFn func() error) *jsonlSource {
	s := &jsonlSource{path: path, r: bufio.NewReaderSize(r, 1<<20), close: closeFn, max: MaxJSONLLine}
	s.pos, _ = r.(interface{ inputPos() int64 })
	return s
}

func (s *jsonlSource) inputPos() int64 {
	if s.pos == nil {
		return 0
	}
	return s.pos.inputPos()
}

func (s *jsonlSource) Next() (Document, error) {
	for {
		raw, err := s.readLine()
		if err != nil {
			return Document{}, err
		}
		s.line++
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		text, err := jsonlText(raw)
		if err != nil {
			return Document{}, fmt.Errorf("%s:%d: %w", s.path, s.line, err)
		}
		return Document{Text: text, File: s.path, Line: s.line}, nil
	}
}

// readLine returns the next line without its newline, or io.EOF.
func (s *jsonlSource) readLine() ([]byte, error) {
	var long []byte // a line longer than the bufio buffer
	for {
		frag, err := s.r.ReadSlice('\n')
		if len(long)+len(frag) > s.max+1 { // +1: the newline
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", s.path, s.line+1, s.max)
		}
		switch {
		case err == nil:
			if long != nil {
				frag = append(long, frag...)
			}
			return frag[:len(frag)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, frag...)
		case errors.Is(err, io.EOF):
			if long != nil {
				frag = append(long, frag...)
			}
			if len(frag) == 0 {
				return nil, io.EOF
			}
			return frag, nil // a last line without a newline
		default:
			return nil, fmt.Errorf("%s:%d: %w", s.path, s.line+1, err)
		}
	}
}

// jsonlText decodes one JSONL line: a JSON object with a string "text"
// field (other fields are ignored; the key is matched exactly).
func jsonlText(line []byte) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return "", fmt.Errorf("want a JSON object with a \"text\" field, got a JSON %s", te.Value)
		}
		return "", fmt.Errorf("malformed JSON: %w", err)
	}
	if obj == nil {
		return "", errors.New("want a JSON object with a \"text\" field, got null")
	}
	raw, ok := obj["text"]
	if !ok {
		return "", errors.New("no \"text\" field")
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil || bytes.Equal(raw, []byte("null")) {
		return "", fmt.Errorf("\"text\" is %s, want a string", jsonKind(raw))
	}
	return text, nil
}

func jsonKind(raw json.RawMessage) string {
	switch b := bytes.TrimSpace(raw); {
	case len(b) == 0:
		return "empty"
	case b[0] == '{':
		return "an object"
	case b[0] == '[':
		return "an array"
	case b[0] == 'n':
		return "null"
	case b[0] == 't' || b[0] == 'f':
		return "a boolean"
	}
	return "a number"
}

func (s *jsonlSource) Close() error {
	if s.close == nil {
		return nil
	}
	err := s.close()
	s.close = nil
	return err
}
