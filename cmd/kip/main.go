// Command kip is the Kubernetes image puller: the controller that keeps
// images cached on every node, and offline helpers for its configuration.
package main

import (
	"errors"
	"fmt"
	"os"
)

// exitError carries an exit code out of a command; its message, if any, has
// already been printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	setMemoryLimit()
	setGCPercent()
	cmd := newRootCommand()
	if err := cmd.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
