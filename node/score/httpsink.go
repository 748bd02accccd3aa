package score

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// HTTPSink POSTs each epoch's Weights as JSON (Content-Type
// application/json) to a URL. Each attempt has its own timeout; a network
// error, a timeout, 408, 429 or a 5xx is retried after a backoff that
// doubles, any other non-2xx is not. So one Write takes at most
// attempts·timeout plus the backoffs (defaults: 3·10 s + 0.5 s + 1 s),
// less if ctx ends first. At most maxResponse bytes of a response are read.
// The receiver can tell a retried POST by its epoch.
type HTTPSink struct {
	url      string
	client   *http.Client
	header   http.Header
	attempts int
	timeout  time.Duration
	backoff  time.Duration
	maxBody  int
}

// Bounds of an HTTPSink.
const (
	maxAttempts = 10
	maxResponse = 64 << 10
)

// HTTPOption configures an HTTPSink.
type HTTPOption func(*HTTPSink) error

// WithAttempts sets how many times a Write tries (1..10; default 3).
func WithAttempts(n int) HTTPOption {
	return func(s *HTTPSink) error {
		if n < 1 || n > maxAttempts {
			return fmt.Errorf("attempts %d, want 1..%d", n, maxAttempts)
		}
		s.attempts = n
		return nil
	}
}

// WithTimeout sets the time limit of one attempt (default 10 s).
func WithTimeout(d time.Duration) HTTPOption {
	return func(s *HTTPSink) error {
		if d <= 0 || d > 10*time.Minute {
			return fmt.Errorf("timeout %v, want in (0, 10m]", d)
		}
		s.timeout = d
		return nil
	}
}

// WithBackoff sets the wait before the first retry, doubled before each
// next (default 500 ms).
func WithBackoff(d time.Duration) HTTPOption {
	return func(s *HTTPSink) error {
		if d < 0 || d > time.Minute {
			return fmt.Errorf("backoff %v, want in [0, 1m]", d)
		}
		s.backoff = d
		return nil
	}
}

// WithHeader adds a request header, such as Authorization.
func WithHeader(key, value string) HTTPOption {
	return func(s *HTTPSink) error {
		s.header.Add(key, value)
		return nil
	}
}

// WithClient sets the HTTP client (default: a client of its own on
// http.DefaultTransport). Its own Timeout, if any, also applies.
func WithClient(c *http.Client) HTTPOption {
	return func(s *HTTPSink) error {
		if c == nil {
			return errors.New("nil client")
		}
		s.client = c
		return nil
	}
}

// WithMaxBody refuses to send a body over n bytes (default 16 MiB; a
// Weights of 4096 miners is about 2 MiB).
func WithMaxBody(n int) HTTPOption {
	return func(s *HTTPSink) error {
		if n < 1 {
			return fmt.Errorf("max body %d bytes, want >= 1", n)
		}
		s.maxBody = n
		return nil
	}
}

// NewHTTPSink returns a sink that POSTs to rawURL (http or https).
func NewHTTPSink(rawURL string, opts ...HTTPOption) (*HTTPSink, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("weights sink url %q: want http(s)://host/…", rawURL)
	}
	s := &HTTPSink{
		url:      rawURL,
		client:   &http.Client{},
		header:   http.Header{},
		attempts: 3,
		timeout:  10 * time.Second,
		backoff:  500 * time.Millisecond,
		maxBody:  16 << 20,
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, fmt.Errorf("weights sink %s: %w", u.Redacted(), err)
		}
	}
	return s, nil
}

// Write POSTs w, retrying as the type says.
func (s *HTTPSink) Write(ctx context.Context, w Weights) error {
	body, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("post weights of epoch %d: %w", w.Epoch, err)
	}
	if len(body) > s.maxBody {
		return fmt.Errorf("post weights of epoch %d: body of %d bytes, over the limit of %d", w.Epoch, len(body), s.maxBody)
	}
	wait := s.backoff
	for attempt := 1; ; attempt++ {
		retry, err := s.post(ctx, body)
		if err == nil {
			return nil
		}
		if !retry || attempt == s.attempts {
			return fmt.Errorf("post weights of epoch %d (attempt %d of %d): %w", w.Epoch, attempt, s.attempts, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("post weights of epoch %d (attempt %d of %d): %w, then %w", w.Epoch, attempt, s.attempts, err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// post makes one attempt and says whether a failure is worth retrying.
func (s *HTTPSink) post(ctx context.Context, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg[:min(len(msg), 200)]))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, err
	}
	return false, err
}
