package report

import (
	"sort"

	"settle/state"
)

// History lists every apply in the journal, oldest first: the generations
// settle drove the machine to, and how each attempt ended.
func History(entries []state.Entry) []Gen {
	out := []Gen{}
	for _, e := range entries {
		if e.Event == state.EvApplyEnd {
			out = append(out, genOf(redactEntry(e)))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}
