package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionString: --version names the module version, or "(devel)"
// with the revision and a dirty flag for a build from a checkout, or the
// version a packaged build was linked with, and always the Go version and
// platform.
func TestVersionString(t *testing.T) {
	t.Parallel()
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: modified}}
	}
	info := func(v string, s []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/lanshare/lanshare", Version: v}, Settings: s}
	}
	platform := ", go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		name   string
		info   *debug.BuildInfo
		linked string
		want   string
	}{
		{"go install of a release", info("v1.2.0", nil), "", "v1.2.0, no revision recorded" + platform},
		{"checkout, clean", info("(devel)", vcs("38b1fb4b3c55410a660a820e8f82e7e4ddd8d709", "false")), "",
			"(devel), revision 38b1fb4b3c55 of 2026-12-01T10:00:00Z" + platform},
		{"checkout, dirty", info("(devel)", vcs("38b1fb4b3c55410a660a820e8f82e7e4ddd8d709", "true")), "",
			"(devel), revision 38b1fb4b3c55 with uncommitted changes of 2026-12-01T10:00:00Z" + platform},
		{"checkout, -buildvcs=false", info("(devel)", nil), "", "(devel), no revision recorded" + platform},
		{"package", info("(devel)", nil), "1.2.0", "1.2.0" + platform},
		{"package from a checkout", info("(devel)", vcs("38b1fb4b3c55410a660a820e8f82e7e4ddd8d709", "false")), "1.2.0",
			"1.2.0, revision 38b1fb4b3c55 of 2026-12-01T10:00:00Z" + platform},
	} {
		if got := versionString(tc.info, tc.linked); got != tc.want {
			t.Errorf("%s: versionString = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := versionString(nil, ""); !strings.HasPrefix(got, "(devel), no revision recorded, go") {
		t.Errorf("without build info: %q", got)
	}
}

// TestVersionFlag: `lanshare --version` prints one line with the version
// from the build info, and a packaged build (-ldflags -X main.version)
// the version it was given.
func TestVersionFlag(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	r := runLanshare(t, tmp, nil, "--version")
	want := "lanshare version (devel), "
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) || !strings.HasSuffix(r.stdout, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") ||
		strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("--version: exit %d, %q; want one line %q... ending in the Go version and platform", r.code, r.stdout, want)
	}

	bin := filepath.Join(tmp, "lanshare-packaged")
	build := exec.Command(goTool(), "build", "-o", bin, "-ldflags", "-X main.version=9.8.7~test", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags -X: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--version")
	cmd.Env = baseEnv(tmp)
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "lanshare version 9.8.7~test") {
		t.Errorf("packaged --version: %v, %q; want lanshare version 9.8.7~test...", err, out)
	}
}
