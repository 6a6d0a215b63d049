package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
)

// TestNewLogger: log.format picks the handler, log.level the least level written.
func TestNewLogger(t *testing.T) {
	tests := []struct {
		name   string
		cfg    config.Log
		json   bool
		levels []string // of the lines written for one of each level, in order
	}{
		{"ok/defaults", config.Log{Format: "text", Level: "info"}, false, []string{"INFO", "WARN", "ERROR"}},
		{"ok/json-debug", config.Log{Format: "json", Level: "debug"}, true, []string{"DEBUG", "INFO", "WARN", "ERROR"}},
		{"ok/text-warn", config.Log{Format: "text", Level: "warn"}, false, []string{"WARN", "ERROR"}},
		{"ok/json-error", config.Log{Format: "json", Level: "error"}, true, []string{"ERROR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			log := newLogger(&b, tt.cfg)
			log.Debug("d", "k", "v")
			log.Info("i", "k", "v")
			log.Warn("w", "k", "v", "drain", 5*time.Second)
			log.Error("e", "k", "v")
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) != len(tt.levels) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tt.levels), b.String())
			}
			for i, l := range lines {
				if tt.json {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil || m["level"] != tt.levels[i] || m["k"] != "v" {
						t.Errorf("line %q: %v, want JSON at %s with k=v", l, err, tt.levels[i])
					}
					if m["level"] == "WARN" && m["drain"] != "5s" {
						t.Errorf("line %q: drain %v, want the duration as 5s", l, m["drain"])
					}
				} else if !strings.HasPrefix(l, "time=") || !strings.Contains(l, " level="+tt.levels[i]+" ") || !strings.Contains(l, " k=v") {
					t.Errorf("line %q, want text at %s with k=v", l, tt.levels[i])
				}
			}
		})
	}
}
