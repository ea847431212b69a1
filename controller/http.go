package controller

import (
	"encoding/json"
	"net/http"
)

// Handler serves the agent's HTTP endpoints.
func Handler(e *Engine, a *Agent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st := e.Status()
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
	mux.HandleFunc("POST /reconcile", func(w http.ResponseWriter, r *http.Request) {
		a.Trigger("POST /reconcile")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("reconcile queued\n"))
	})
	if metricsHandler != nil {
		mux.Handle("GET /metrics", metricsHandler)
	}
	return mux
}

// metricsHandler is set when metrics are compiled in.
var metricsHandler http.Handler
