// Package kube is the daemon's optional Kubernetes side: informers for the
// NetworkAttachmentDefinitions of this plugin's type, the Pods on this node
// and IPAMClaims; Events that tell users about bad NADs when they create
// them; and the look-ups ADD needs (is this NAD valid, which IPAMClaim does
// this attachment use). Without a kubeconfig the daemon runs from CNI
// requests alone, and nothing here is used.
package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	ipamclaims "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1/apis/clientset/versioned"
	claiminformers "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1/apis/informers/externalversions"
	claimlisters "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1/apis/listers/ipamclaims/v1alpha1"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	nadinformers "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/informers/externalversions"
	nadlisters "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/listers/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
)

// Client holds the clients, informers and listers.
type Client struct {
	Kube   kubernetes.Interface
	NADs   nadclient.Interface
	Claims ipamclaims.Interface
	node   string
	log    *slog.Logger

	nadLister     nadlisters.NetworkAttachmentDefinitionLister
	podLister     corelisters.PodLister
	podInformer   cache.SharedIndexInformer
	claimLister   claimlisters.IPAMClaimLister
	claimInformer cache.SharedIndexInformer
	nodeLister    corelisters.NodeLister
	deletedNodes  chan string
	recorder      record.EventRecorder
	validator     *nadValidator

	factories []interface{ Start(<-chan struct{}) }
	synced    []cache.InformerSynced
}

// resync is how often informers replay their cache; events drive
// everything, this only bounds how long a missed event can matter.
const resync = 10 * time.Minute

// InCluster, as the kubeconfig, means the pod's service account.
const InCluster = "in-cluster"

// New builds the clients from a kubeconfig file (or InCluster). Informers
// start with Start.
func New(kubeconfig, node string, log *slog.Logger) (*Client, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == InCluster {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "ovn-overlayd/" + node
	c := &Client{node: node, log: log, deletedNodes: make(chan string, 1024)}
	if c.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if c.NADs, err = nadclient.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("NetworkAttachmentDefinition client: %w", err)
	}
	if c.Claims, err = ipamclaims.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("IPAMClaim client: %w", err)
	}

	// Events are recorded against NADs, so the scheme must know them.
	eventScheme := runtime.NewScheme()
	if err := scheme.AddToScheme(eventScheme); err != nil {
		return nil, err
	}
	if err := nadv1.AddToScheme(eventScheme); err != nil {
		return nil, err
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.Kube.CoreV1().Events("")})
	c.recorder = broadcaster.NewRecorder(eventScheme, corev1.EventSource{Component: "ovn-overlayd", Host: node})

	nadFactory := nadinformers.NewSharedInformerFactory(c.NADs, resync)
	nadInformer := nadFactory.K8sCniCncfIo().V1().NetworkAttachmentDefinitions()
	c.nadLister = nadInformer.Lister()
	c.validator = newNADValidator(c.recorder, log)
	if _, err := nadInformer.Informer().AddEventHandler(c.validator.handler()); err != nil {
		return nil, err
	}

	// Only this node's pods: the cache stays small in large clusters.
	podFactory := informers.NewSharedInformerFactoryWithOptions(c.Kube, resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}))
	podInformer := podFactory.Core().V1().Pods()
	c.podLister = podInformer.Lister()
	c.podInformer = podInformer.Informer()

	claimFactory := claiminformers.NewSharedInformerFactory(c.Claims, resync)
	claimInformer := claimFactory.K8s().V1alpha1().IPAMClaims()
	c.claimLister = claimInformer.Lister()
	c.claimInformer = claimInformer.Informer()

	nodeFactory := informers.NewSharedInformerFactory(c.Kube, resync)
	nodeInformer := nodeFactory.Core().V1().Nodes()
	c.nodeLister = nodeInformer.Lister()
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.nodeDeleted}); err != nil {
		return nil, err
	}

	c.factories = []interface{ Start(<-chan struct{}) }{nadFactory, podFactory, claimFactory, nodeFactory}
	c.synced = []cache.InformerSynced{nadInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
		claimInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced}
	return c, nil
}

// Start runs the informers until stop is closed and waits (bounded by ctx)
// for their first sync.
func (c *Client) Start(ctx context.Context, stop <-chan struct{}) error {
	for _, f := range c.factories {
		f.Start(stop)
	}
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), c.synced...) {
		return fmt.Errorf("kubernetes informers did not sync within a minute (are the NetworkAttachmentDefinition and IPAMClaim CRDs installed?)")
	}
	return nil
}

// Pod returns this node's pod ns/name from the informer cache.
func (c *Client) Pod(namespace, name string) (*corev1.Pod, bool) {
	p, err := c.podLister.Pods(namespace).Get(name)
	return p, err == nil
}
