package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the public HuggingFace Hub.
const DefaultEndpoint = "https://huggingface.co"

// maxJSON bounds every JSON reply read into memory; a revision listing of a
// repo with tens of thousands of files stays well below it.
const maxJSON = 16 << 20

// lfsMediaType is the Git LFS batch API's content type.
const lfsMediaType = "application/vnd.git-lfs+json"

// Client talks to one Hub endpoint and owns one cache directory. The zero
// value is not usable; build one with New.
type Client struct {
	endpoint        *url.URL
	token           string
	cacheDir        string
	http            *http.Client
	requestTimeout  time.Duration // metadata calls
	transferTimeout time.Duration // one file's bytes, up or down
	attempts        int
	backoff         time.Duration
	maxFile         int64 // bytes one downloaded file may have
}

// DefaultMaxFileSize bounds one downloaded file unless WithMaxFileSize
// says otherwise: a GPT-2 1.5B state (parameters and two moments in
// float32) is about 18 GB.
const DefaultMaxFileSize = 64 << 30

// WithMaxFileSize bounds the bytes of one downloaded file: a file the
// server announces larger is refused before its download, and one whose
// size it does not announce is cut off past the bound, so a server cannot
// fill the disk.
func WithMaxFileSize(n int64) Option { return func(c *Client) { c.maxFile = n } }

// Option changes a Client built by New.
type Option func(*Client)

// WithEndpoint sets the Hub URL (default $HF_ENDPOINT, else DefaultEndpoint).
func WithEndpoint(u string) Option { return func(c *Client) { c.setEndpoint(u) } }

// WithToken sets the access token (default $HF_TOKEN, else
// $HUGGING_FACE_HUB_TOKEN, else the token `huggingface-cli login` saved in
// $HF_TOKEN_PATH or $HF_HOME/token, by default ~/.cache/huggingface/token).
// An empty token sends no Authorization header.
// The token goes only to the endpoint's host, over https (or plain http to
// a loopback address), and is dropped on any redirect elsewhere.
func WithToken(t string) Option { return func(c *Client) { c.token = t } }

// WithCacheDir sets the cache root (default $HF_HUB_CACHE, else $HF_HOME/hub,
// else ~/.cache/huggingface/hub).
func WithCacheDir(dir string) Option { return func(c *Client) { c.cacheDir = dir } }

// WithHTTPClient sets the HTTP client (default a fresh http.Client).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTimeouts sets the deadline of one metadata request and of one file
// transfer (defaults 30 s and 1 h).
func WithTimeouts(request, transfer time.Duration) Option {
	return func(c *Client) { c.requestTimeout, c.transferTimeout = request, transfer }
}

// WithRetry sets how many times an idempotent request is tried and the first
// backoff, doubled after each failure (defaults 5 and 500 ms).
func WithRetry(attempts int, backoff time.Duration) Option {
	return func(c *Client) { c.attempts, c.backoff = max(attempts, 1), backoff }
}

// New returns a Client configured from the environment, then opts.
func New(opts ...Option) (*Client, error) {
	c := &Client{
		token:           defaultToken(),
		cacheDir:        defaultCacheDir(),
		http:            &http.Client{},
		requestTimeout:  30 * time.Second,
		transferTimeout: time.Hour,
		attempts:        5,
		backoff:         500 * time.Millisecond,
		maxFile:         DefaultMaxFileSize,
	}
	c.setEndpoint(firstNonEmpty(os.Getenv("HF_ENDPOINT"), DefaultEndpoint))
	for _, o := range opts {
		o(c)
	}
	if c.endpoint == nil {
		return nil, errors.New("hub: endpoint must be an absolute http(s) URL")
	}
	if c.cacheDir == "" {
		return nil, errors.New("hub: no cache directory (set HF_HUB_CACHE or HF_HOME)")
	}
	if c.requestTimeout <= 0 || c.transferTimeout <= 0 {
		return nil, errors.New("hub: timeouts must be positive")
	}
	if c.maxFile <= 0 {
		return nil, errors.New("hub: the file size bound must be positive")
	}
	return c, nil
}

func (c *Client) setEndpoint(s string) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.endpoint = nil
		return
	}
	c.endpoint = u
}

// CacheDir is the cache root this Client reads and writes.
func (c *Client) CacheDir() string { return c.cacheDir }

func defaultCacheDir() string {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return d
	}
	if h := hfHome(); h != "" {
		return filepath.Join(h, "hub")
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// url joins the endpoint with already-escaped path segments.
func (c *Client) url(escapedPath string) string {
	return c.endpoint.String() + escapedPath
}

// call is one HTTP request, described so it can be sent again on retry.
type call struct {
	method     string
	url        string
	header     http.Header
	body       func() (io.ReadCloser, error) // nil: no body
	size       int64                         // body length, -1 unknown
	retry      bool                          // idempotent: retry on 429, 5xx, transport errors
	timeout    time.Duration
	noRedirect bool // stop at the first redirect that leaves the endpoint's host
}

// send performs cl and returns a 2xx or 3xx response whose body must be
// closed; closing it also ends the request's deadline. Other statuses become
// an *HTTPError.
func (c *Client) send(ctx context.Context, cl call) (*http.Response, error) {
	wait := c.backoff
	for attempt := 1; ; attempt++ {
		resp, err := c.sendOnce(ctx, cl)
		retryable := cl.retry && attempt < c.attempts && ctx.Err() == nil && isTransient(resp, err)
		if err == nil && resp.StatusCode < 400 {
			return resp, nil
		}
		if err == nil {
			err = responseError(cl.method, cl.url, resp)
		}
		if !retryable {
			return nil, err
		}
		if d := retryAfter(resp); d > wait {
			wait = min(d, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (after %d attempts: %v)", ctx.Err(), attempt, err)
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func isTransient(resp *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
}

func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	s, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

func (c *Client) sendOnce(ctx context.Context, cl call) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	var body io.ReadCloser
	if cl.body != nil {
		b, err := cl.body()
		if err != nil {
			cancel()
			return nil, err
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, cl.url, body)
	if err != nil {
		cancel()
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	if body != nil {
		req.ContentLength = cl.size
	}
	for k, v := range cl.header {
		req.Header[k] = v
	}
	// The token goes to the Hub only, never to the storage hosts that LFS
	// upload and download URLs point at, and never in clear text.
	if c.sendsToken(req.URL) {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "dtrain-hub/1")
	// Redirects keep the token only on the Hub's host (whatever the Go
	// version's own rule), and a HEAD for file metadata stops at the first
	// redirect off the Hub: the headers it needs are on that redirect.
	hc := *c.http
	hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if !c.sendsToken(r.URL) {
			// Off the Hub's host, or from https down to http on it.
			r.Header.Del("Authorization")
		}
		if r.URL.Host != c.endpoint.Host && cl.noRedirect {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", cl.method, cl.url, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// sendsToken reports whether a request to u carries the token: only to the
// endpoint's host, and only over https, or over http to a loopback address
// (a local mirror or test server, where nothing crosses a network).
func (c *Client) sendsToken(u *url.URL) bool {
	if c.token == "" || u.Host != c.endpoint.Host {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	h := u.Hostname()
	ip := net.ParseIP(h)
	return u.Scheme == "http" && (h == "localhost" || (ip != nil && ip.IsLoopback()))
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// getJSON GETs url, retrying transient failures, and decodes the reply into out.
func (c *Client) getJSON(ctx context.Context, url string, out any) error {
	resp, err := c.send(ctx, call{method: http.MethodGet, url: url, retry: true, timeout: c.requestTimeout})
	if err != nil {
		return err
	}
	return decodeJSON(resp, out)
}

// postJSON POSTs in as JSON (or raw bytes with contentType) and decodes the
// reply into out when out is not nil. POSTs are not retried: a commit or a tag
// may have happened even when the reply was lost.
func (c *Client) postJSON(ctx context.Context, url, contentType string, timeout time.Duration, in any, out any) error {
	var data []byte
	switch v := in.(type) {
	case []byte:
		data = v
	default:
		var err error
		if data, err = json.Marshal(in); err != nil {
			return err
		}
	}
	accept := "application/json"
	if contentType == lfsMediaType {
		accept = lfsMediaType // Git LFS servers may refuse other types
	}
	h := http.Header{"Content-Type": {contentType}, "Accept": {accept}}
	resp, err := c.send(ctx, call{
		method: http.MethodPost, url: url, header: h, size: int64(len(data)), timeout: timeout,
		body: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	})
	if err != nil {
		return err
	}
	if out == nil {
		resp.Body.Close()
		return nil
	}
	return decodeJSON(resp, out)
}

func decodeJSON(resp *http.Response, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", resp.Request.URL, err)
	}
	if len(data) > maxJSON {
		return fmt.Errorf("reply from %s exceeds %d bytes", resp.Request.URL, maxJSON)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode reply from %s: %w", resp.Request.URL, err)
	}
	return nil
}

// ConfigEndpoint returns the options of a client of an endpoint a config
// file names ("" = the default), and a warning to log when the token is
// withheld from it (TokenAllowed).
func ConfigEndpoint(endpoint string) (opts []Option, warning string) {
	if endpoint == "" {
		return nil, ""
	}
	opts = []Option{WithEndpoint(endpoint)}
	if !TokenAllowed(endpoint) {
		opts = append(opts, WithToken(""))
		warning = "hub.endpoint is neither the default Hub nor $HF_ENDPOINT: the Hub token is not sent to it (set HF_ENDPOINT to the same URL to send it)"
	}
	return opts, warning
}

// TokenAllowed reports whether the Hub token may go to endpoint when a
// config file names it: only the default Hub, or the endpoint the
// environment names too ($HF_ENDPOINT). A config file is easily shared.
func TokenAllowed(endpoint string) bool {
	norm := func(s string) string { return strings.TrimRight(s, "/") }
	e := norm(endpoint)
	return e == DefaultEndpoint || (os.Getenv("HF_ENDPOINT") != "" && e == norm(os.Getenv("HF_ENDPOINT")))
}
