package kube

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Node clean-up. When a Node object is deleted, what its daemon owned in OVN
// (layer3 subnet claims, pods' ports and addresses) must be released, by
// exactly one daemon: the holder of a Lease. The leader also reconciles when
// it takes over, so deletions that happened while nobody led are not lost.

// LeaseName is the Lease the daemons compete for.
const LeaseName = "ovn-overlay-node-cleanup"

// NodeReleaser releases everything node owns; owners lists the nodes that
// own something now.
type NodeReleaser struct {
	Release func(ctx context.Context, node string) error
	Owners  func() []string
}

// RunNodeCleanup takes part in the election in namespace until stop closes.
func (c *Client) RunNodeCleanup(namespace string, r NodeReleaser, stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-stop
		cancel()
	}()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: namespace},
		Client:     c.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.node},
	}
	go func() {
		for ctx.Err() == nil {
			leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
				Lock:            lock,
				LeaseDuration:   15 * time.Second,
				RenewDeadline:   10 * time.Second,
				RetryPeriod:     2 * time.Second,
				ReleaseOnCancel: true,
				Name:            LeaseName,
				Callbacks: leaderelection.LeaderCallbacks{
					OnStartedLeading: func(ctx context.Context) { c.leadNodeCleanup(ctx, r) },
					OnStoppedLeading: func() { c.log.Info("no longer leading node clean-up") },
				},
			})
		}
	}()
}

// leadNodeCleanup runs while this daemon leads: reconcile once, then act
// on every Node deletion.
func (c *Client) leadNodeCleanup(ctx context.Context, r NodeReleaser) {
	c.log.Info("leading node clean-up")
	c.reconcileNodes(ctx, r)
	for {
		select {
		case <-ctx.Done():
			return
		case node := <-c.deletedNodes:
			c.release(ctx, r, node)
		case <-time.After(time.Minute):
			c.reconcileNodes(ctx, r)
		}
	}
}

// reconcileNodes releases owners that have no Node object.
func (c *Client) reconcileNodes(ctx context.Context, r NodeReleaser) {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		c.log.Error("list nodes", "err", err)
		return
	}
	exists := map[string]bool{}
	for _, n := range nodes {
		exists[n.Name] = true
	}
	for _, owner := range r.Owners() {
		if !exists[owner] {
			c.release(ctx, r, owner)
		}
	}
}

func (c *Client) release(ctx context.Context, r NodeReleaser, node string) {
	if _, err := c.nodeLister.Get(node); err == nil {
		return // re-created since
	}
	if err := r.Release(ctx, node); err != nil {
		c.log.Error("release deleted node", "node", node, "err", err)
	}
}

// nodeDeleted feeds the leader; a full queue only delays work until the
// next reconcile.
func (c *Client) nodeDeleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if n, ok := obj.(*corev1.Node); ok {
		select {
		case c.deletedNodes <- n.Name:
		default:
		}
	}
}
