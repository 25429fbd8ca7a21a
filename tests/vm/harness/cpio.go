package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// entry is one file, directory or symlink of the initramfs.
type entry struct {
	mode uint32 // permission bits only
	dir  bool
	link string // symlink target
	src  string // host file to copy (regular files)
	data []byte // content when src is empty
}

// image is an initramfs under construction, by path inside the guest.
type image map[string]*entry

func (im image) addDirs(p string) {
	for d := parent(p); d != ""; d = parent(d) {
		if im[d] == nil {
			im[d] = &entry{mode: 0o755, dir: true}
		}
	}
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return ""
	}
	return p[:i]
}

func (im image) file(p, src string, mode uint32) { im.addDirs(p); im[p] = &entry{mode: mode, src: src} }
func (im image) data(p string, b []byte, mode uint32) {
	im.addDirs(p)
	im[p] = &entry{mode: mode, data: b}
}
func (im image) symlink(p, target string) { im.addDirs(p); im[p] = &entry{mode: 0o777, link: target} }
func (im image) dir(p string)             { im.addDirs(p + "/x") }

// writeCPIO writes the image in the kernel's initramfs format (cpio
// "newc"), parents before children. read opens a host file.
func (im image) writeCPIO(w io.Writer, read func(string) ([]byte, error)) error {
	names := make([]string, 0, len(im))
	for n := range im {
		names = append(names, n)
	}
	sort.Strings(names) // "/a" sorts before "/a/b"
	ino := 1
	for _, n := range names {
		e := im[n]
		var body []byte
		mode := e.mode
		switch {
		case e.dir:
			mode |= 0o040000
		case e.link != "":
			mode |= 0o120000
			body = []byte(e.link)
		default:
			mode |= 0o100000
			body = e.data
			if e.src != "" {
				b, err := read(e.src)
				if err != nil {
					return err
				}
				body = b
			}
		}
		if err := cpioRecord(w, ino, mode, strings.TrimPrefix(n, "/"), body); err != nil {
			return err
		}
		ino++
	}
	return cpioRecord(w, ino, 0, "TRAILER!!!", nil)
}

func cpioRecord(w io.Writer, ino int, mode uint32, name string, body []byte) error {
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, body...)
	buf = pad4(buf)
	_, err := w.Write(buf)
	return err
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
