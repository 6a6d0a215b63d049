package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// buildVersion is what a build says about itself: the module version (the one set
// with -ldflags "-X main.version=…" wins), the VCS revision and commit time the go
// command stamps into a build from a checkout, whether the tree had uncommitted
// changes, and the Go toolchain.
type buildVersion struct {
	Module   string // "v1.2.3", or "(devel)" for a build from a checkout
	Revision string // full commit hash, "" when the build has none
	Time     string // commit time, RFC 3339, "" when unknown
	Modified bool   // built from a tree with uncommitted changes
	Go       string // e.g. go1.26.8
	Platform string // e.g. linux/amd64
}

// readVersion reads bi (nil: no build information) with ldflag, the value of
// main.version.
func readVersion(bi *debug.BuildInfo, ldflag string) buildVersion {
	v := buildVersion{Module: "(devel)"}
	if bi != nil {
		if bi.Main.Version != "" {
			v.Module = bi.Main.Version
		}
		v.Go = bi.GoVersion
		var goos, goarch string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "GOOS":
				goos = s.Value
			case "GOARCH":
				goarch = s.Value
			}
		}
		if goos != "" && goarch != "" {
			v.Platform = goos + "/" + goarch
		}
	}
	if ldflag != "" {
		v.Module = ldflag
	}
	return v
}

// Short is the one word the server logs at start: the module version, or for a
// build from a checkout "dev-" and the revision's first 12 digits ("dev" with
// neither).
func (v buildVersion) Short() string {
	if v.Module != "(devel)" {
		return v.Module
	}
	if len(v.Revision) >= 12 {
		s := "dev-" + v.Revision[:12]
		if v.Modified {
			s += "+modified"
		}
		return s
	}
	return "dev"
}

// String is what deputy version prints: the module version on the first line,
// then what the build knows of its source and toolchain, one fact a line.
func (v buildVersion) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deputy %s\n", v.Module)
	if v.Revision != "" {
		mod := ""
		if v.Modified {
			mod = " (modified: built with uncommitted changes)"
		}
		fmt.Fprintf(&b, "revision %s%s\n", v.Revision, mod)
	}
	if v.Time != "" {
		fmt.Fprintf(&b, "committed %s\n", v.Time)
	}
	if v.Go != "" {
		fmt.Fprintf(&b, "go %s", v.Go)
		if v.Platform != "" {
			fmt.Fprintf(&b, " %s", v.Platform)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// currentVersion is this binary's buildVersion.
func currentVersion() buildVersion {
	bi, _ := debug.ReadBuildInfo()
	return readVersion(bi, version)
}

func versionString() string { return currentVersion().Short() }
