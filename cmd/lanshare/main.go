// Command lanshare shares files with peers on the local network.
//
//	lanshare serve                  run the agent: receive into ~/LANShare
//	lanshare peers                  list the agents on the LAN
//	lanshare send TARGET PATH...    send files and folders to a peer (--to, repeated: to several)
//	lanshare id | trust | untrust | trusted    identity and trusted peers
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

func main() {
	app := newApp(os.Stdout, os.Stderr)
	if err := app.Run(flagsFirst(app, os.Args)); err != nil {
		fmt.Fprintf(os.Stderr, "lanshare: %s\n", oneLine(err))
		var ue usageError
		if errors.As(err, &ue) && ue.usage != "" {
			// Like urfave/cli's own usage errors, the synopsis goes to
			// stdout; stderr keeps its one line.
			fmt.Fprintf(os.Stdout, "usage: %s\n(lanshare %s --help for more)\n", ue.usage, strings.Fields(ue.usage)[1])
		}
		os.Exit(exitCode(err))
	}
}
