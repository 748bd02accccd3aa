package metrics

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is dtrain_build_info: always 1, its labels say which build
// serves the metrics (the module version, the git commit it was built
// from and whether the tree had changes, the Go version), as
// Prometheus's own *_build_info metrics do.
func buildInfo() prometheus.Gauge {
	labels := prometheus.Labels{"version": "(devel)", "revision": "", "modified": "", "goversion": ""}
	if bi, ok := debug.ReadBuildInfo(); ok {
		labels["version"], labels["goversion"] = bi.Main.Version, bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				labels["revision"] = s.Value
			case "vcs.modified":
				labels["modified"] = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "dtrain_build_info", Help: "Always 1; the labels name the build of dtrain serving these metrics.",
		ConstLabels: labels})
	g.Set(1)
	return g
}
