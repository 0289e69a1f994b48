package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// KubeVirt runs each VM in a virt-launcher pod; a live migration runs a
// second one (the target) on another node while the first (the source)
// still runs the VM. The daemon tells them apart by what KubeVirt puts on
// the pods, as OVN-Kubernetes does; it reads no KubeVirt objects.
const (
	// LabelVMName names the VM (VirtualMachineInstance) a virt-launcher
	// pod runs; LabelVM is the older label some deployments still set.
	LabelVMName = "vm.kubevirt.io/name"
	LabelVM     = "kubevirt.io/vm"
	// LabelNodeName is set by KubeVirt to the node the VM runs on once it
	// runs there: on a migration target, once the migration completed.
	LabelNodeName = "kubevirt.io/nodeName"
	// AnnotationTargetStarted is set on a migration target pod when the
	// VM has started on it (before the migration is marked completed).
	AnnotationTargetStarted = "kubevirt.io/migration-target-start-timestamp"
	// VirtLauncherPrefix starts the name of every virt-launcher pod.
	VirtLauncherPrefix = "virt-launcher-"
)

// VMOf returns the VM a pod runs, or "" for a pod that is not a
// virt-launcher.
func VMOf(pod *corev1.Pod) string {
	if vm := pod.Labels[LabelVMName]; vm != "" {
		return vm
	}
	return pod.Labels[LabelVM]
}

// VMRunsHere reports whether KubeVirt says the VM now runs in pod: the
// migration target signal (the VM started on the target, or the migration
// completed and the node label moved to the target's node).
func VMRunsHere(pod *corev1.Pod) bool {
	if VMOf(pod) == "" || pod.DeletionTimestamp != nil {
		return false
	}
	if _, ok := pod.Annotations[AnnotationTargetStarted]; ok {
		return true
	}
	return pod.Spec.NodeName != "" && pod.Labels[LabelNodeName] == pod.Spec.NodeName
}

// PodOf returns pod namespace/name as this node's informer or, for a pod
// of another node, the API server has it; nil if it does not exist.
func (c *Client) PodOf(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod, err := c.podFresh(ctx, namespace, name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return pod, err
}

// Running reports whether pod runs (exists, has not ended, is not being
// deleted).
func Running(pod *corev1.Pod) bool {
	return pod != nil && pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// OtherVMPods returns the running pods of pod's VM other than pod itself:
// during a live migration, the source.
func (c *Client) OtherVMPods(ctx context.Context, pod *corev1.Pod) ([]corev1.Pod, error) {
	vm := VMOf(pod)
	if vm == "" {
		return nil, nil
	}
	key := LabelVMName
	if pod.Labels[LabelVMName] == "" {
		key = LabelVM
	}
	list, err := c.Kube.CoreV1().Pods(pod.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{key: vm}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("pods of VM %s/%s: %w", pod.Namespace, vm, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Name != pod.Name && Running(&p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// OnLocalPods calls h with every pod of this node the informer learns
// of or sees change (a restarted daemon gets them all once).
func (c *Client) OnLocalPods(h func(*corev1.Pod)) error {
	_, err := c.podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				h(pod)
			}
		},
		UpdateFunc: func(_, obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				h(pod)
			}
		},
	})
	return err
}
