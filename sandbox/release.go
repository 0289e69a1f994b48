package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Release is the OVN and OVS build a sandbox runs: the host's Debian
// packages (Debian 12: OVN 23.03, OVS 3.1), or a newer build kept in a
// Debian root that scripts/ovn-root.sh prepares (Debian 13: OVN 25.03,
// OVS 3.5).
//
// A root's binaries run through the root's own dynamic loader with the
// root's libraries (`ld-linux-x86-64.so.2 --library-path ... BINARY`), not
// through chroot: the loader runs the program in the same process, so the
// pid the sandbox tracks is the daemon's, and the daemons see the host's
// files as they are (sockets, /dev/net/tun, network namespaces) with no
// bind mount to set up or leave behind. The programs get every path they
// use on their command line (databases, schemas, sockets, pid and log
// files), so nothing they were built with needs to exist on the host.
type Release struct {
	// Name is what users choose: "23.03" or "25.03".
	Name string
	// Root is the Debian root holding the build; "" for the host's
	// packages.
	Root string
}

// ReleaseEnv selects the sandbox's OVN release when Options.Release is
// nil: "23.03" (or "" or "host") for the host's packages, "25.03" for the
// prepared root. The Makefile sets it (OVN=25.03 by default).
const ReleaseEnv = "OVN_OVERLAY_OVN"

// RootEnv overrides where the root of the release ReleaseEnv names lives
// (default /var/cache/ovn-overlay/ovn-<release>); other releases keep the
// default.
const RootEnv = "OVN_OVERLAY_OVN_ROOT"

// hostRelease is the OVN version Debian 12's packages carry.
const hostRelease = "23.03"

// rootReleases are the releases served from a prepared root.
var rootReleases = []string{"25.03"}

// ReleaseFromEnv returns the release ReleaseEnv names.
func ReleaseFromEnv() (Release, error) {
	return LookupRelease(os.Getenv(ReleaseEnv))
}

// LookupRelease returns the named release, checking that its root is
// prepared.
func LookupRelease(name string) (Release, error) {
	switch name {
	case "", "host", hostRelease:
		return Release{Name: hostRelease}, nil
	}
	known := false
	for _, r := range rootReleases {
		known = known || r == name
	}
	if !known {
		return Release{}, fmt.Errorf("sandbox: unknown OVN release %q: use %s (the host's packages) or %s", name, hostRelease, strings.Join(rootReleases, ", "))
	}
	root := "/var/cache/ovn-overlay/ovn-" + name
	if override := os.Getenv(RootEnv); override != "" && os.Getenv(ReleaseEnv) == name {
		root = override
	}
	if _, err := os.Stat(filepath.Join(root, ".ready")); err != nil {
		return Release{}, fmt.Errorf("sandbox: OVN %s is not prepared in %s: run `scripts/ovn-root.sh %s %s` (make deps does)", name, root, name, root)
	}
	return Release{Name: name, Root: root}, nil
}

// tools are the OVS and OVN programs a release provides; anything else
// (ip, ping) always comes from the host.
var tools = map[string]bool{
	"ovsdb-server": true, "ovsdb-tool": true, "ovsdb-client": true,
	"ovs-vswitchd": true, "ovs-vsctl": true, "ovs-appctl": true, "ovs-ofctl": true,
	"ovn-northd": true, "ovn-controller": true, "ovn-nbctl": true, "ovn-sbctl": true, "ovn-appctl": true, "ovn-trace": true,
}

// Command rewrites argv to run the release's build of an OVS/OVN program.
func (r Release) Command(argv []string) []string {
	if r.Root == "" || len(argv) == 0 || !tools[argv[0]] {
		return argv
	}
	bin, err := r.binary(argv[0])
	if err != nil {
		// Left as is, so the error names the program when it fails to run.
		return argv
	}
	libs := strings.Join([]string{
		filepath.Join(r.Root, "lib/x86_64-linux-gnu"),
		filepath.Join(r.Root, "usr/lib/x86_64-linux-gnu"),
	}, ":")
	out := []string{filepath.Join(r.Root, "lib64/ld-linux-x86-64.so.2"), "--library-path", libs, bin}
	return append(out, argv[1:]...)
}

// WriteToolWrappers puts one shell script per OVS/OVN program of the
// release in dir, each running the release's build (Command), so that a
// process finding its tools on PATH (the node daemon runs ovs-ofctl and
// ovn-trace to diagnose) gets the release's and not the host's. It
// writes nothing for the host's release.
func (r Release) WriteToolWrappers(dir string) error {
	if r.Root == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sandbox: tool wrappers: %w", err)
	}
	for name := range tools {
		argv := r.Command([]string{name})
		if argv[0] == name {
			continue // the release lacks it: the host's stays on PATH
		}
		var quoted []string
		for _, a := range argv {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		script := "#!/bin/sh\n# OVN " + r.Name + "'s " + name + " (sandbox.Release.WriteToolWrappers)\nexec " + strings.Join(quoted, " ") + ` "$@"` + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			return fmt.Errorf("sandbox: tool wrapper %s: %w", name, err)
		}
	}
	return nil
}

// Path is where a file of the release (a schema) lives on the host.
func (r Release) Path(p string) string {
	if r.Root == "" {
		return p
	}
	return filepath.Join(r.Root, p)
}

// binary finds a program in the root, following the root's symlinks
// (Debian's alternatives are absolute links, meant for inside the root).
func (r Release) binary(name string) (string, error) {
	for _, dir := range []string{"usr/sbin", "usr/bin", "sbin", "bin"} {
		p, err := r.resolve(filepath.Join("/", dir, name))
		if err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, r.Root)
}

// resolve maps a path inside the root to the host path of the file it
// names, following symlinks within the root.
func (r Release) resolve(inRoot string) (string, error) {
	for hops := 0; hops < 16; hops++ {
		host := filepath.Join(r.Root, inRoot)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return host, nil
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(inRoot), target)
		}
		inRoot = target
	}
	return "", errors.New("too many symlinks")
}

var versionRE = regexp.MustCompile(`ovn-northd (\d+\.\d+\.\d+)`)

// Version asks ovn-northd which OVN version the release really runs.
func (r Release) Version() (string, error) {
	argv := r.Command([]string{"ovn-northd", "--version"})
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ovn-northd --version: %w: %s", err, out)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("ovn-northd --version printed %q", out)
	}
	return string(m[1]), nil
}
