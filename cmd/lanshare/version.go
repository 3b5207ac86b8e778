package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version, when set at link time (-ldflags "-X main.version=1.2.0", as
// .ci/package does for the packages), is the release version; otherwise
// --version reports the module version from the build info.
var version string

// versionString is what `lanshare --version` prints after "lanshare
// version ": the release or module version ("(devel)" for a build from a
// checkout without one), the VCS revision and whether the tree had
// uncommitted changes (both recorded by go build unless -buildvcs=false),
// and the Go version and platform. info is debug.ReadBuildInfo's result,
// nil when the binary has none.
func versionString(info *debug.BuildInfo, linked string) string {
	v, rev, dirty, vcsTime := linked, "", false, ""
	goVersion := runtime.Version()
	if info != nil {
		if v == "" {
			v = info.Main.Version
		}
		goVersion = info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			case "vcs.time":
				vcsTime = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	s := v
	switch {
	case rev != "":
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += ", revision " + rev
		if dirty {
			s += " with uncommitted changes"
		}
		if vcsTime != "" {
			s += " of " + vcsTime
		}
	case linked == "":
		s += ", no revision recorded"
	}
	return fmt.Sprintf("%s, %s %s/%s", s, goVersion, runtime.GOOS, runtime.GOARCH)
}

// buildVersion is versionString for this binary.
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionString(info, version)
}
