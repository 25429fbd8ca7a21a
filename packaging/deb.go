// Package packaging builds halo's Debian package with nfpm used as a
// library: the binaries (static, CGO off), the systemd unit, an example
// config, /etc/default/halod and the man pages halod(8) and haloctl(8),
// which the binaries print from their own flag definitions (--man).
package packaging

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// Options say what to build.
type Options struct {
	Root    string // repository root (where go.mod is)
	OutDir  string // where the .deb goes
	Version string // Debian upstream version, e.g. 0.1.0
	Arch    string // GOARCH; default the build machine's
}

// Build compiles halod and haloctl and packages them; it returns the
// path of the .deb.
func Build(o Options) (string, error) {
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	o.Version = DebVersion(o.Version)
	work, err := os.MkdirTemp("", "halo-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "bin")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+o.Version,
		"-o", bin+"/", "./cmd/halod", "./cmd/haloctl")
	build.Dir = o.Root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	var contents files.Contents
	add := func(src, dst string, mode os.FileMode, typ string) {
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode}})
	}
	add(filepath.Join(bin, "halod"), "/usr/sbin/halod", 0o755, "")
	add(filepath.Join(bin, "haloctl"), "/usr/bin/haloctl", 0o755, "")
	add(filepath.Join(o.Root, "packaging", "halod.service"), "/lib/systemd/system/halod.service", 0o644, "")
	add(filepath.Join(o.Root, "configs", "lvs-dr.conf"), "/usr/share/doc/halo/examples/keepalived.conf", 0o644, "")
	if _, err := os.Stat(filepath.Join(o.Root, "docs", "grafana-halo.json")); err == nil {
		add(filepath.Join(o.Root, "docs", "grafana-halo.json"), "/usr/share/doc/halo/grafana-halo.json", 0o644, "")
	}
	def := filepath.Join(work, "default")
	os.WriteFile(def, []byte("# Extra halod flags for the systemd unit, e.g. --dataplane xdp --metrics-addr 127.0.0.1:9650\nHALOD_OPTS=\"\"\n"), 0o644)
	add(def, "/etc/default/halod", 0o644, files.TypeConfigNoReplace)
	// The man pages come from the binaries built for this machine; when
	// cross-building, the host's own build prints them (same flags).
	for _, name := range []string{"halod", "haloctl"} {
		page, err := manPage(o, bin, name, work)
		if err != nil {
			return "", err
		}
		add(page, "/usr/share/man/man8/"+name+".8.gz", 0o644, "")
	}
	info := &nfpm.Info{Name: "halo", Arch: o.Arch, Platform: "linux", Version: o.Version, Section: "net", Priority: "optional",
		Maintainer: "halo maintainers <halo@localhost>", Homepage: "https://github.com/halo-lb/halo", License: "Apache-2.0",
		Description: "keepalived-compatible VRRP, health checks and XDP/IPVS load balancing\n" +
			"halod reads keepalived.conf, runs VRRP, health checkers and an XDP or IPVS data plane,\n" +
			"with sd_notify, a control socket (haloctl) and Prometheus metrics.",
		MTime:        time.Unix(0, 0).UTC(),
		Overridables: nfpm.Overridables{Contents: contents, Recommends: []string{"iproute2"}, Suggests: []string{"prometheus"}}}
	if err := nfpm.PrepareForPackager(nfpm.WithDefaults(info), "deb"); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.OutDir, pkg.ConventionalFileName(info))
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", err
	}
	return out, f.Close()
}

func manPage(o Options, bin, name, work string) (string, error) {
	exe := filepath.Join(bin, name)
	if o.Arch != runtime.GOARCH {
		host := filepath.Join(work, "host-"+name)
		c := exec.Command("go", "build", "-o", host, "./cmd/"+name)
		c.Dir = o.Root
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", name, err, out)
		}
		exe = host
	}
	var troff bytes.Buffer
	c := exec.Command(exe, "--man")
	c.Stdout = &troff
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("%s --man: %w", name, err)
	}
	if !strings.HasPrefix(troff.String(), ".TH ") {
		return "", fmt.Errorf("%s --man printed no man page", name)
	}
	path := filepath.Join(work, name+".8.gz")
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(troff.Bytes())
	zw.Close()
	return path, os.WriteFile(path, gz.Bytes(), 0o644)
}

// DebVersion turns `git describe` output into a Debian version: one that
// starts with a digit ("c361428-dirty" becomes "0.0.0~git.c361428.dirty").
func DebVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if v == "" || v == "dev" {
		return "0.0.0~dev"
	}
	if v[0] < '0' || v[0] > '9' {
		v = "0.0.0~git." + v
	}
	return strings.NewReplacer("-", ".", "_", ".").Replace(v)
}
