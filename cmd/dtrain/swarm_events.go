package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// minerEvent is one line of a miner's metrics.jsonl: one of node/miner's
// typed events (start, epoch, round, load, error, stop) as dtrain miner
// writes it, with the fields dtrain swarm reads. The swarm reads these,
// never the miners' logs.
type minerEvent struct {
	Event        string   `json:"event"`
	Peer         string   `json:"peer"`
	Epoch        *int64   `json:"epoch"`
	Loss         logFloat `json:"loss"`
	ValLoss      logFloat `json:"val_loss"`
	Tokens       *int64   `json:"tokens"`
	Group        int      `json:"group"`
	Contributors int      `json:"contributors"`
	Alone        string   `json:"alone"`
	Dropped      bool     `json:"dropped"`
	SyncS        logFloat `json:"sync_s"`
	BytesSent    int64    `json:"bytes_sent"`
	ParamHash    string   `json:"param_hash"`
	StartHash    string   `json:"start_hash"`
	Resumed      bool     `json:"resumed"`
	FromEpoch    int64    `json:"from_epoch"`
	Source       string   `json:"source"`
	Bytes        int64    `json:"bytes"`
	TookS        logFloat `json:"took_s"`
	Donors       int      `json:"donors"`
	Peers        int      `json:"peers"`
	Role         string   `json:"role"`
	UpMbps       logFloat `json:"up_mbps"`
	DownMbps     logFloat `json:"down_mbps"`
	Op           string   `json:"op"`
	Reason       string   `json:"reason"`
	Error        string   `json:"error"`
}

// parseMinerEvent reads one metrics.jsonl line; ok is false for a line
// that is not an event.
func parseMinerEvent(text string) (minerEvent, bool) {
	var e minerEvent
	if !strings.HasPrefix(text, "{") || json.Unmarshal([]byte(text), &e) != nil || e.Event == "" {
		return minerEvent{}, false
	}
	return e, true
}

// logFloat is a float that the JSONL writer may have spelled "NaN",
// "+Inf" or "-Inf".
type logFloat float64

func (f *logFloat) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*f = logFloat(v)
	return nil
}

// eventTail follows a miner's metrics.jsonl: the whole lines appended
// since the swarm first started that miner, across its restarts (a
// restarted miner appends to the same file; its first write cuts off a
// line its killed predecessor tore, which the tail never read).
type eventTail struct {
	path string
	off  int64 // end of the last whole line read
}

// newEventTail starts at the file's current end, so that lines from an
// earlier run in the same work dir are not read.
func newEventTail(path string) *eventTail {
	t := &eventTail{path: path}
	if st, err := os.Stat(path); err == nil {
		t.off = st.Size()
	}
	return t
}

// maxEventBytes bounds one read of the file: a tail that fell this far
// behind catches up over the next polls.
const maxEventBytes = 16 << 20

// read returns the whole lines appended since the last read.
func (t *eventTail) read() ([]string, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // the miner has not opened it yet
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < t.off {
		t.off = st.Size() // cut off behind us: only a torn line we never read
	}
	buf := make([]byte, min(st.Size()-t.off, maxEventBytes))
	n, err := f.ReadAt(buf, t.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", t.path, err)
	}
	buf = buf[:n]
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		if len(buf) == maxEventBytes { // one line longer than any event: skip it
			t.off += int64(len(buf))
		}
		return nil, nil
	}
	t.off += int64(end + 1)
	return strings.Split(string(buf[:end]), "\n"), nil
}
