package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"settle/desired"
)

// Metrics exported on the agent's /metrics. Labels never carry values from
// the environment or DSNs: only generation, commit, color and snapshot ID.
var (
	metricReconcile = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "settle_reconcile_duration_seconds",
		Help:    "Duration of reconcile passes (observe, apply, verify).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"outcome"})
	metricDrifted = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "settle_drifted_resources",
		Help: "Resources not matching the desired state at the last pass.",
	})
	metricApplies = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "settle_applies_total",
		Help: "Apply runs started.",
	})
	metricFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "settle_apply_failures_total",
		Help: "Apply runs that failed.",
	})
	metricGeneration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "settle_generation_info",
		Help: "The generation last converged to (value 1).",
	}, []string{"generation", "commit", "active", "snapshot"})
)

func init() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metricReconcile, metricDrifted, metricApplies, metricFailures, metricGeneration,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func setGeneration(d *desired.Desired) {
	snap := ""
	if d.Postgres != nil {
		snap = d.Postgres.Snapshot
	}
	metricGeneration.Reset()
	metricGeneration.WithLabelValues(short(d.Generation), d.Git.Short(), d.App.Active, snap).Set(1)
}
