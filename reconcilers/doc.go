// Package reconcilers holds what every managed system shares: the command
// seam (run a program, read and write a file, dial a port) that is local now
// and SSH later, and the plan vocabulary (resources, statuses, actions).
package reconcilers
