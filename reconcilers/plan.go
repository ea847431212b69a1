package reconcilers

// Status of one resource after planning.
type Status string

const (
	InSync  Status = "in_sync"
	Drifted Status = "drifted"
	Unknown Status = "unknown" // could not tell; never acted on by surprise
	Failed  Status = "error"
)

// Action is one step of a plan. Op and Args are what Apply executes; Detail
// is what a person reads in a plan.
type Action struct {
	Kind     string            `json:"kind"`
	Resource string            `json:"resource"`
	Op       string            `json:"op"`
	Detail   string            `json:"detail"`
	Args     map[string]string `json:"args,omitempty"`
}

// Resource is one managed thing, what it should be, what it is, and the
// actions that would make it so. After names resources whose actions must
// succeed first (by ID); a failure there skips this one.
type Resource struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Status  Status   `json:"status"`
	Desired string   `json:"desired"`
	Actual  string   `json:"actual"`
	Reason  string   `json:"reason,omitempty"` // why unknown/error, or what to do
	Cause   string   `json:"cause,omitempty"`  // intended (the file changed) or drift (the machine did)
	Actions []Action `json:"-"`
	After   []string `json:"after,omitempty"`
}

// ID is unique within a plan: kind/name.
func (r Resource) ID() string { return r.Kind + "/" + r.Name }
