package main

import (
	"fmt"
	"io"
	"os"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// logFormats are --log-format's values: auto is console on a terminal and
// JSON otherwise.
var logFormats = []string{"auto", "json", "console"}

func init() {
	// go-libp2p logs through gologshim (log/slog), the DHT through go-log
	// (zap); both end in go-log's core, which writes into log.Logger, so
	// the stream has one format and one level filter. gologshim takes its
	// handler at each logger's first line, so this must come first.
	golog.SetPrimaryCore(zerologCore{})
	gologshim.SetDefaultHandler(golog.SlogHandler())
}

// setupLogging points log.Logger at stderr in format, at level lvl, and
// sets libp2p's level from lvl.
func setupLogging(lvl zerolog.Level, format string) error {
	l, err := newLogger(os.Stderr, format, isTerminal(os.Stderr), os.Getenv("NO_COLOR") != "")
	if err != nil {
		return err
	}
	zerolog.SetGlobalLevel(lvl)
	zerolog.DurationFieldUnit, zerolog.DurationFieldInteger = time.Millisecond, true
	log.Logger = l
	setLibp2pLevel(lvl)
	return nil
}

// newLogger writes to w as format says; console output has colors unless
// noColor (NO_COLOR set, https://no-color.org).
func newLogger(w io.Writer, format string, tty, noColor bool) (zerolog.Logger, error) {
	if format == "auto" {
		format = "json"
		if tty {
			format = "console"
		}
	}
	switch format {
	case "json":
		return zerolog.New(w).With().Timestamp().Logger(), nil
	case "console":
		cw := zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05", NoColor: noColor}
		return zerolog.New(cw).With().Timestamp().Logger(), nil
	}
	return zerolog.Logger{}, fmt.Errorf("--log-format %q: want one of %q", format, logFormats)
}

// setLibp2pLevel sets every libp2p subsystem's level: warn, or above when
// lvl is (its info lines are connection chatter), debug only when lvl is.
// GOLOG_LOG_LEVEL, go-log's own setting, wins when set.
func setLibp2pLevel(lvl zerolog.Level) {
	if os.Getenv("GOLOG_LOG_LEVEL") != "" {
		return
	}
	name := "fatal"
	switch {
	case lvl <= zerolog.DebugLevel:
		name = "debug"
	case lvl <= zerolog.WarnLevel:
		name = "warn"
	case lvl == zerolog.ErrorLevel:
		name = "error"
	}
	_ = golog.SetLogLevel("*", name) // name always parses
	if lvl > zerolog.DebugLevel && lvl <= zerolog.WarnLevel {
		// A run's first peer has nobody to refresh its routing table
		// from: the DHT warns so until others join, which is no news.
		_ = golog.SetLogLevel("dht/RtRefreshManager", "error")
	}
}

// zerologCore is a zapcore.Core that writes go-log's entries into
// log.Logger, the subsystem in a "logger" field.
type zerologCore struct {
	fields []zapcore.Field // from With
}

func (c zerologCore) Enabled(l zapcore.Level) bool {
	zl := zerologLevel(l)
	return zl >= zerolog.GlobalLevel() && zl >= log.Logger.GetLevel()
}

func (c zerologCore) With(fields []zapcore.Field) zapcore.Core {
	return zerologCore{fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c zerologCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c zerologCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	ev := log.WithLevel(zerologLevel(e.Level))
	if e.LoggerName != "" {
		ev = ev.Str("logger", e.LoggerName)
	}
	ev.Fields(enc.Fields).Msg(e.Message)
	return nil
}

func (c zerologCore) Sync() error { return nil }

// zerologLevel is zap level l in zerolog's terms. zap itself panics or
// exits after writing a panic or fatal entry; WithLevel does neither.
func zerologLevel(l zapcore.Level) zerolog.Level {
	switch l {
	case zapcore.DebugLevel:
		return zerolog.DebugLevel
	case zapcore.InfoLevel:
		return zerolog.InfoLevel
	case zapcore.WarnLevel:
		return zerolog.WarnLevel
	case zapcore.ErrorLevel, zapcore.DPanicLevel:
		return zerolog.ErrorLevel
	case zapcore.PanicLevel:
		return zerolog.PanicLevel
	}
	if l < zapcore.DebugLevel {
		return zerolog.TraceLevel
	}
	return zerolog.FatalLevel
}

// isTerminal reports whether f is a terminal (progress bars, colors).
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}
