// Command lanshare shares files with peers on the local network.
//
//	lanshare serve                  run the agent: receive into ~/LANShare
//	lanshare peers                  list the agents on the LAN
//	lanshare send TARGET PATH...    send files and folders to a peer
//	lanshare id | trust | untrust | trusted    identity and trusted peers
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "lanshare: %s\n", oneLine(err))
		os.Exit(exitCode(err))
	}
}
