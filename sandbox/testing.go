package sandbox

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
)

// RunTests is a TestMain body for packages whose tests need a sandbox:
// it checks prerequisites (failing loudly: a skipped suite would pass CI
// while testing nothing), starts the cluster, hands it to use, runs the
// tests and stops every process it started.
func RunTests(m interface{ Run() int }, opts Options, use func(*Cluster)) int {
	if err := CheckPrerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Stop()
	use(c)
	code := m.Run()
	reportCrashes(c)
	return code
}

// reportCrashes prints the daemons that died on their own during a run.
func reportCrashes(c *Cluster) {
	for _, crash := range c.Crashes() {
		fmt.Fprintf(os.Stderr, "sandbox (OVN %s): %s\n", c.release.Name, crash)
	}
}

// InNetns runs f on a thread switched into the network namespace at path.
// Sockets keep the namespace they were created in, so a listener or
// connection made in f keeps working after the thread switches back.
func InNetns(path string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// A thread left in the wrong namespace would corrupt
			// whatever Go schedules on it next.
			panic(fmt.Sprintf("cannot restore the thread's netns: %v", err))
		}
	}()
	return f()
}
