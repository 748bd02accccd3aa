// Package wandb logs a run to Weights & Biases over W&B's public HTTP API,
// the two endpoints its SDK uses to stream a run:
//
//   - POST {base}/graphql (HTTP basic auth, user "api", the API key as the
//     password): the upsertBucket mutation creates the run, or finds it
//     again after a restart, with its config (a JSONString of
//     {"key": {"value": v}}), group and job type, and answers the
//     bucket's historyLineCount, where a resumed run's history goes on;
//     the viewer query names the key's default entity when none is set.
//   - POST {base}/files/{entity}/{project}/{run}/file_stream: JSON
//     {"files": {"wandb-history.jsonl": {"offset": n, "content": [row, …]},
//     "wandb-summary.json": {"offset": 0, "content": [summary]}}}, each row
//     a JSON object with _step, _timestamp and _runtime; a run ends with
//     {"complete": true, "exitcode": 0}.
//
// (Names as in W&B's open-source SDK: wandb/sdk/internal/internal_api.py,
// upsert_bucket, and wandb/sdk/internal/file_stream.py.) A Run never
// blocks its caller: rows wait in a bounded queue, a sender posts them
// every Flush interval, retrying failures with exponential backoff (up to
// two minutes between tries), and when the queue is full the oldest rows
// are dropped and counted. Like the SDK it does not retry what W&B
// refuses outright (400, 403, 404, 409): that batch is dropped and
// counted.
//
// The key goes over https only (or plain http to a loopback address, for
// tests), and only to the default host, api.wandb.ai, or to a base URL
// that the caller took from the environment (Config.BaseURLTrusted).
package wandb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DefaultBaseURL is W&B's API.
const DefaultBaseURL = "https://api.wandb.ai"

// Config configures Start.
type Config struct {
	// BaseURL is W&B's API; DefaultBaseURL when empty.
	BaseURL string
	// BaseURLTrusted says the caller took BaseURL from the environment
	// (WANDB_BASE_URL), not from a config file alone: only then does the
	// key go to a host other than the default one.
	BaseURLTrusted bool
	APIKey         string
	// Entity is the W&B user or team; empty: the key's default entity.
	Entity  string
	Project string
	// Name is the run's id within the project: the same name resumes the
	// same run. Letters, digits, '-', '_' and '.' only.
	Name    string
	Group   string // runs shown together (the dtrain run id)
	JobType string // the role: validator, miner, train
	Config  map[string]any
	// Queue bounds the rows held while W&B is slow or down; 1000 when 0.
	Queue int
	// Flush is how often rows are posted; 15 s (the SDK's) when 0.
	Flush time.Duration
	// Timeout bounds one request; 30 s when 0.
	Timeout time.Duration
	Client  *http.Client
	Log     zerolog.Logger
}

// Run streams one W&B run.
type Run struct {
	cfg     Config
	base    *url.URL
	client  *http.Client
	started time.Time

	mu      sync.Mutex
	rows    [][]byte // encoded rows not yet posted, oldest first
	summary map[string]any
	sumGen  int // counts Summary calls: a flush clears the summary it sent only if no newer came
	wake    chan struct{}
	closing chan struct{}
	done    chan struct{}
	closed  bool

	entity  string
	ready   bool  // the run exists on W&B (after upsert)
	head    int64 // rows ever removed from the front of rows (sent or dropped)
	offset  int   // history lines W&B holds
	dropped atomic.Int64
	sent    atomic.Int64
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Start checks cfg and starts the run's sender; it returns at once (W&B
// is reached in the background).
func Start(cfg Config) (*Run, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("wandb: no API key (WANDB_API_KEY)")
	}
	if cfg.Project == "" || !validName.MatchString(cfg.Project) || !validName.MatchString(cfg.Name) {
		return nil, fmt.Errorf("wandb: project %q and run name %q must be 1 to 128 letters, digits, '-', '_' or '.'", cfg.Project, cfg.Name)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("wandb: base URL %q: %v", cfg.BaseURL, err)
	}
	if err := keySafe(base, cfg.BaseURLTrusted); err != nil {
		return nil, err
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	if cfg.Flush <= 0 {
		cfg.Flush = 15 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
	}
	// Redirects would carry the key elsewhere: W&B's API does not send any.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := &Run{cfg: cfg, base: base, client: &c, started: time.Now(), entity: cfg.Entity,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	go r.send()
	return r, nil
}

// keySafe refuses a base URL the key must not go to.
func keySafe(u *url.URL, trusted bool) error {
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("wandb: the API key goes over https only, not to %s", u.Redacted())
		}
	default:
		return fmt.Errorf("wandb: base URL %s: want https", u.Redacted())
	}
	def, _ := url.Parse(DefaultBaseURL)
	if u.Host != def.Host && !trusted {
		return fmt.Errorf("wandb: the API key goes to %s only when WANDB_BASE_URL names it, not a config file alone", u.Host)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Log queues one history row; it never blocks. Values must encode as
// JSON (non-finite floats are dropped from the row: JSON has none).
func (r *Run) Log(row map[string]any) {
	clean := finite(row, 3)
	now := time.Now()
	clean["_timestamp"] = float64(now.UnixMilli()) / 1000
	clean["_runtime"] = now.Sub(r.started).Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	b, err := json.Marshal(clean) // _step is set when the row is sent (flush)
	if err != nil {
		r.dropped.Add(1)
		r.cfg.Log.Warn().Err(err).Msg("wandb: a row that does not encode is dropped")
		return
	}
	r.rows = append(r.rows, b)
	if over := len(r.rows) - r.cfg.Queue; over > 0 {
		r.rows = r.rows[over:]
		r.head += int64(over)
		if r.dropped.Add(int64(over)) == int64(over) || r.dropped.Load()%100 == 0 {
			r.cfg.Log.Warn().Int64("dropped", r.dropped.Load()).Msg("wandb is slow or down: dropping the oldest rows")
		}
	}
}

// finite copies m without its non-finite float values (JSON has none),
// with room for extra more keys.
func finite(m map[string]any, extra int) map[string]any {
	out := make(map[string]any, len(m)+extra)
	for k, v := range m {
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			continue
		}
		out[k] = v
	}
	return out
}

// Summary sets the run's summary, sent with the next rows (non-finite
// values left out).
func (r *Run) Summary(s map[string]any) {
	s = finite(s, 0)
	r.mu.Lock()
	r.summary = s
	r.sumGen++
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Dropped is the rows dropped so far; Sent the rows W&B took.
func (r *Run) Dropped() int64 { return r.dropped.Load() }
func (r *Run) Sent() int64    { return r.sent.Load() }

// Close posts what is queued and marks the run finished, giving up when
// ctx ends; rows logged after Close are dropped.
func (r *Run) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.closing)
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("wandb: close: %w (%d rows not sent)", ctx.Err(), r.pending())
	}
	// Completion, once everything before it went.
	if r.pending() == 0 && r.ready {
		return r.post(ctx, r.streamURL(), map[string]any{"complete": true, "exitcode": 0}, nil)
	}
	return fmt.Errorf("wandb: close: %d rows not sent", r.pending())
}

func (r *Run) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rows)
}

// send runs the run's sender: the upsert first (retried), then the rows
// every Flush, until Close; on Close it tries once more to post what is
// left.
func (r *Run) send() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.closing:
		case <-r.done:
			return
		}
		// A last try is bounded by one request's timeout.
		t := time.NewTimer(r.cfg.Timeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-r.done:
		}
	}()
	backoff := min(time.Second, r.cfg.Flush)
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-r.wake:
			return true
		case <-r.closing:
			return false
		}
	}
	for {
		err := r.upsert(ctx)
		if err == nil {
			break
		}
		r.cfg.Log.Warn().Err(err).Dur("retry_in_ms", backoff).Msg("wandb: could not create the run")
		if !wait(backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Minute)
	}
	backoff = r.cfg.Flush
	for {
		closing := !wait(backoff)
		err := r.flush(ctx)
		switch {
		case err == nil:
			backoff = r.cfg.Flush
		case closing:
		default:
			backoff = min(2*backoff, 2*time.Minute)
			r.cfg.Log.Warn().Err(err).Dur("retry_in_ms", backoff).Int("queued", r.pending()).Msg("wandb: rows not sent")
		}
		if closing {
			return
		}
	}
}

// errRefused is an answer W&B will not change its mind about.
type errRefused struct{ status int }

func (e errRefused) Error() string { return fmt.Sprintf("refused with HTTP %d", e.status) }

// flush posts the queued rows (and the summary) from the history offset.
func (r *Run) flush(ctx context.Context) error {
	r.mu.Lock()
	rows := r.rows[:len(r.rows):len(r.rows)]
	head := r.head
	summary, gen := r.summary, r.sumGen
	r.mu.Unlock()
	if len(rows) == 0 && summary == nil {
		return nil
	}
	// Each row's _step is its line in the run's history: spliced in
	// first, so that a row logged before a resumed run's history was
	// known still steps on from it.
	content := make([]string, len(rows))
	for i, b := range rows {
		content[i] = fmt.Sprintf(`{"_step":%d,%s`, r.offset+i, b[1:])
	}
	files := map[string]any{}
	if len(rows) > 0 {
		files["wandb-history.jsonl"] = map[string]any{"offset": r.offset, "content": content}
	}
	if summary != nil {
		sb, err := json.Marshal(summary)
		if err == nil {
			files["wandb-summary.json"] = map[string]any{"offset": 0, "content": []string{string(sb)}}
		}
	}
	err := r.post(ctx, r.streamURL(), map[string]any{"files": files}, nil)
	var refused errRefused
	if err != nil && !errors.As(err, &refused) {
		return err
	}
	r.mu.Lock()
	// Rows dropped from the front meanwhile are gone already: remove what
	// is left of the ones sent.
	n := int(max(0, head+int64(len(rows))-r.head))
	r.rows = r.rows[n:]
	r.head += int64(n)
	if r.sumGen == gen {
		r.summary = nil
	}
	r.mu.Unlock()
	if err != nil {
		r.dropped.Add(int64(n))
		r.cfg.Log.Warn().Err(err).Int("rows", len(rows)).Msg("wandb refused rows: dropped")
		return nil
	}
	r.offset += len(rows)
	r.sent.Add(int64(len(rows)))
	return nil
}

func (r *Run) streamURL() string {
	return r.base.String() + "/files/" + url.PathEscape(r.entity) + "/" + url.PathEscape(r.cfg.Project) + "/" +
		url.PathEscape(r.cfg.Name) + "/file_stream"
}

const upsertBucket = `mutation UpsertBucket($name: String, $project: String, $entity: String, $groupName: String, $jobType: String, $config: JSONString) {
  upsertBucket(input: {name: $name, modelName: $project, entityName: $entity, groupName: $groupName, jobType: $jobType, config: $config}) {
    bucket { id name historyLineCount project { name entity { name } } }
    inserted
  }
}`

const viewerQuery = `query Viewer { viewer { id entity } }`

// upsert creates (or finds) the run and learns where its history goes on.
func (r *Run) upsert(ctx context.Context) error {
	if r.entity == "" {
		var v struct {
			Viewer struct {
				Entity string `json:"entity"`
			} `json:"viewer"`
		}
		if err := r.graphql(ctx, viewerQuery, nil, &v); err != nil {
			return err
		}
		if v.Viewer.Entity == "" {
			return errors.New("wandb: the API key has no default entity: set wandb.entity")
		}
		r.entity = v.Viewer.Entity
	}
	cfg := make(map[string]any, len(r.cfg.Config))
	for k, v := range r.cfg.Config {
		cfg[k] = map[string]any{"value": v}
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("wandb: config: %w", err)
	}
	var out struct {
		UpsertBucket struct {
			Bucket struct {
				HistoryLineCount int `json:"historyLineCount"`
			} `json:"bucket"`
			Inserted bool `json:"inserted"`
		} `json:"upsertBucket"`
	}
	vars := map[string]any{"name": r.cfg.Name, "project": r.cfg.Project, "entity": r.entity, "groupName": r.cfg.Group,
		"jobType": r.cfg.JobType, "config": string(cb)}
	if err := r.graphql(ctx, upsertBucket, vars, &out); err != nil {
		return err
	}
	n := max(out.UpsertBucket.Bucket.HistoryLineCount, 0)
	r.mu.Lock()
	r.offset = n
	r.ready = true
	r.mu.Unlock()
	r.cfg.Log.Info().Str("run", r.entity+"/"+r.cfg.Project+"/"+r.cfg.Name).Bool("new", out.UpsertBucket.Inserted).
		Int("history_rows", n).Msg("wandb run")
	return nil
}

// graphql posts a query and decodes its data into out.
func (r *Run) graphql(ctx context.Context, query string, vars map[string]any, out any) error {
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := r.post(ctx, r.base.String()+"/graphql", map[string]any{"query": query, "variables": vars}, &resp); err != nil {
		return err
	}
	if len(resp.Errors) > 0 {
		return fmt.Errorf("wandb: graphql: %s", resp.Errors[0].Message)
	}
	return json.Unmarshal(resp.Data, out)
}

// post sends body as JSON with the key, bounded by the request timeout,
// and decodes the answer into out (nil: drained).
func (r *Run) post(ctx context.Context, u string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.SetBasicAuth("api", r.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("wandb: %w", err)
	}
	defer resp.Body.Close()
	limited := io.LimitReader(resp.Body, 4<<20)
	switch {
	case resp.StatusCode == 400 || resp.StatusCode == 403 || resp.StatusCode == 404 || resp.StatusCode == 409:
		return errRefused{resp.StatusCode}
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("wandb: %s", resp.Status)
	case out == nil:
		_, err = io.Copy(io.Discard, limited)
		return err
	}
	return json.NewDecoder(limited).Decode(out)
}
