package main

import (
	"runtime/debug"
	"testing"
)

func TestReadVersion(t *testing.T) {
	const rev = "de4854550d22481b5a18b3f8c72978b80ed47b02"
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		bi     *debug.BuildInfo
		ldflag string
		short  string
		full   string
	}{
		{
			name:  "no build information",
			short: "dev", full: "deputy (devel)\n",
		},
		{
			name: "release build from the module proxy",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"},
				Settings: settings("GOOS", "linux", "GOARCH", "arm64")},
			short: "v1.4.0", full: "deputy v1.4.0\ngo go1.26.8 linux/arm64\n",
		},
		{
			name: "checkout with VCS stamping",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
				Settings: settings("vcs.revision", rev, "vcs.time", "2026-12-05T00:26:17Z", "vcs.modified", "false", "GOOS", "linux", "GOARCH", "amd64")},
			short: "dev-de4854550d22",
			full:  "deputy (devel)\nrevision " + rev + "\ncommitted 2026-12-05T00:26:17Z\ngo go1.26.8 linux/amd64\n",
		},
		{
			name: "checkout with uncommitted changes",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
				Settings: settings("vcs.revision", rev, "vcs.modified", "true")},
			short: "dev-de4854550d22+modified",
			full:  "deputy (devel)\nrevision " + rev + " (modified: built with uncommitted changes)\ngo go1.26.8\n",
		},
		{
			name: "ldflags version wins over the module's",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261205002617-de4854550d22"},
				Settings: settings("vcs.revision", rev)},
			ldflag: "v2.0.0-rc.1",
			short:  "v2.0.0-rc.1",
			full:   "deputy v2.0.0-rc.1\nrevision " + rev + "\ngo go1.26.8\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := readVersion(tc.bi, tc.ldflag)
			if got := v.Short(); got != tc.short {
				t.Errorf("Short() = %q, want %q", got, tc.short)
			}
			if got := v.String(); got != tc.full {
				t.Errorf("String() =\n%s\nwant\n%s", got, tc.full)
			}
		})
	}
}
