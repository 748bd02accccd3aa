package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinels for what callers branch on; match them with errors.Is.
var (
	// ErrNotFound: the repo, revision or file does not exist (or is not
	// visible to this token: the Hub answers 401 RepoNotFound for both).
	ErrNotFound = errors.New("hub: not found")
	// ErrUnauthorized: the token is missing, wrong, or lacks the right.
	ErrUnauthorized = errors.New("hub: unauthorized")
	// ErrTagExists: Tag was asked for a tag name already in use.
	ErrTagExists = errors.New("hub: tag already exists")
)

// maxErrorBody bounds how much of an error reply is read for its message.
const maxErrorBody = 64 << 10

// HTTPError is a reply with a 4xx or 5xx status.
type HTTPError struct {
	Method, URL string
	Status      int
	Code        string // X-Error-Code, e.g. "RepoNotFound", "RevisionNotFound", "EntryNotFound"
	Message     string // the reply's "error" field, else X-Error-Message, else its text
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns the sentinels this status and error code mean.
func (e *HTTPError) Unwrap() []error {
	var errs []error
	switch {
	case e.Status == http.StatusNotFound,
		e.Code == "RepoNotFound", e.Code == "RevisionNotFound", e.Code == "EntryNotFound":
		errs = append(errs, ErrNotFound)
	}
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		errs = append(errs, ErrUnauthorized)
	}
	return errs
}

// responseError reads (a bounded part of) resp's body and closes it.
func responseError(method, url string, resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &HTTPError{Method: method, URL: url, Status: resp.StatusCode, Code: resp.Header.Get("X-Error-Code")}
	var reply struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &reply) == nil && len(reply.Error) > 0 {
		var s string
		if json.Unmarshal(reply.Error, &s) == nil {
			e.Message = s
		} else {
			e.Message = string(reply.Error)
		}
	}
	if e.Message == "" {
		e.Message = resp.Header.Get("X-Error-Message")
	}
	if e.Message == "" && !strings.Contains(resp.Header.Get("Content-Type"), "html") {
		e.Message = strings.TrimSpace(string(body[:min(len(body), 512)]))
	}
	return e
}
