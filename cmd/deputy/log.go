package main

import (
	"io"
	"log/slog"

	"github.com/deputy-auth/deputy/internal/config"
)

// newLogger is the log of deputy serve on w, in the format and from the level of
// the configuration's log section (README, Operating deputy › Logs). The
// configuration is validated, so anything else than json is text and any other
// level info.
func newLogger(w io.Writer, lc config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(lc.Level)}
	if lc.Format == config.LogFormatJSON {
		// A duration as Go writes it ("5s"), as the text format does, rather than
		// a count of nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				return slog.String(a.Key, a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func logLevel(level string) slog.Level {
	switch level {
	case config.LogLevelDebug:
		return slog.LevelDebug
	case config.LogLevelWarn:
		return slog.LevelWarn
	case config.LogLevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}
