// CoreDNS built with only the plugins the Corefile of addons/coredns.yaml uses, the way CoreDNS
// documents building it as a library: upstream's main.go imports every plugin (core/plugin), whose
// cloud DNS providers and tracers are 81 of the 483 modules in the graph of its one `go build`.
// tests/cluster/test_cluster.py checks the Corefile against what this binary registers.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
