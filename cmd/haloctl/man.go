package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/halo-lb/halo/pkg/daemon/manpage"
)

// manPage is haloctl(8); OPTIONS come from the flag set, COMMANDS from
// the verb table.
func manPage(fs *flag.FlagSet) manpage.Page {
	var cmds strings.Builder
	for _, v := range verbs() {
		fmt.Fprintf(&cmds, "%s: %s.\n\n", v.usage, v.help)
	}
	cmds.WriteString("version: print the version.")
	return manpage.Page{Name: "haloctl", Section: 8, Version: version, Summary: "query and steer a running halod",
		Synopsis: "[--control PATH] COMMAND [ARGS]", Flags: fs,
		Before: []manpage.Section{{Title: "Description", Body: "haloctl talks HTTP/JSON to halod's control socket (mode 0600, so as root)."},
			{Title: "Commands", Body: cmds.String()}},
		After: []manpage.Section{{Title: "Exit status", Body: "0 on success, 1 when halod could not be reached or refused the request (a reload of a broken config), 2 on bad usage."},
			{Title: "See also", Body: "halod(8)"}}}
}
