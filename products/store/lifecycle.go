package store

import (
	"fmt"
	"strings"
)

// State is a subscription's lifecycle state.
type State string

// Subscription states; see the package documentation for the machine.
const (
	StateRequested State = "requested" // waiting for a data owner's decision
	StateApproved  State = "approved"  // approved, not yet serving (transient: approve activates)
	StateRejected  State = "rejected"  // final: the request was refused
	StateActive    State = "active"    // the product is served under the plan
	StateSuspended State = "suspended" // temporarily not served; resume reactivates
	StateRevoked   State = "revoked"   // final: access withdrawn
)

// Valid reports whether s is one of the states.
func (s State) Valid() bool {
	switch s {
	case StateRequested, StateApproved, StateRejected, StateActive, StateSuspended, StateRevoked:
		return true
	}
	return false
}

// Final reports whether no action leads out of s.
func (s State) Final() bool { return s == StateRejected || s == StateRevoked }

// Action is what a data owner (or the partner, for a request) does to a
// subscription.
type Action string

// Actions. ActionRequest is recorded in history by CreateSubscription and is
// not a Transition action.
const (
	ActionRequest  Action = "request"
	ActionApprove  Action = "approve"
	ActionReject   Action = "reject"
	ActionActivate Action = "activate"
	ActionSuspend  Action = "suspend"
	ActionResume   Action = "resume"
	ActionRevoke   Action = "revoke"
	// ActionSetKafkaFormat is recorded in history by SetKafkaFormat; it
	// changes no state and is not a Transition action.
	ActionSetKafkaFormat Action = "set-kafka-format"
)

// Valid reports whether a is an action Transition accepts.
func (a Action) Valid() bool {
	switch a {
	case ActionApprove, ActionReject, ActionActivate, ActionSuspend, ActionResume, ActionRevoke:
		return true
	}
	return false
}

// step is one edge of the state machine.
type step struct {
	action   Action
	from, to State
}

// edges is the whole state machine, in the order the package documentation
// lists it.
var edges = []step{
	{ActionApprove, StateRequested, StateApproved},
	{ActionReject, StateRequested, StateRejected},
	{ActionActivate, StateApproved, StateActive},
	{ActionSuspend, StateActive, StateSuspended},
	{ActionResume, StateSuspended, StateActive},
	{ActionRevoke, StateApproved, StateRevoked},
	{ActionRevoke, StateActive, StateRevoked},
	{ActionRevoke, StateSuspended, StateRevoked},
}

// plan returns the steps action takes from state from: one edge, or for
// approve two (requested -> approved -> active, so an approved
// subscription serves at once). ok is false when the action is illegal.
func plan(from State, action Action) (steps []step, ok bool) {
	for _, e := range edges {
		if e.action == action && e.from == from {
			steps = append(steps, e)
			break
		}
	}
	if len(steps) == 0 {
		return nil, false
	}
	if action == ActionApprove {
		steps = append(steps, step{ActionActivate, StateApproved, StateActive})
	}
	return steps, true
}

// allowed lists the actions legal in state s.
func allowed(s State) []Action {
	var out []Action
	for _, e := range edges {
		if e.from == s {
			out = append(out, e.action)
		}
	}
	return out
}

// TransitionError is the error of an action the subscription's state does
// not allow. errors.Is(err, ErrIllegalTransition) holds.
type TransitionError struct {
	SubscriptionID string
	From           State  // the state the subscription is in
	Action         Action // the refused action
}

func (e *TransitionError) Error() string {
	var hint string
	if acts := allowed(e.From); len(acts) == 0 {
		hint = string(e.From) + " is final"
	} else {
		names := make([]string, len(acts))
		for i, a := range acts {
			names[i] = string(a)
		}
		hint = "allowed: " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("store: cannot %s subscription %s: it is %s (%s)", e.Action, e.SubscriptionID, e.From, hint)
}

// Is makes errors.Is(err, ErrIllegalTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }
