package runner

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// report computes the pod's status and hands it to the sink (which sends it only if it
// changed).
func (w *worker) report(ctx context.Context, pod *corev1.Pod, v *view) error {
	st := w.status(pod, v)
	if err := w.r.cfg.Status.PodStatus(ctx, pod, st); err != nil {
		return fmt.Errorf("report status: %w", err)
	}
	return nil
}

// status is the pod's status as the kubelet computes it.
func (w *worker) status(pod *corev1.Pod, v *view) corev1.PodStatus {
	st := corev1.PodStatus{
		HostIP:    w.r.cfg.HostIP,
		StartTime: w.startTime,
		QOSClass:  qosClass(pod),
	}
	if w.r.cfg.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: w.r.cfg.HostIP}}
	}
	if f := w.facts(pod, v); f.PodIP != "" && (pod.Spec.HostNetwork || v.ready()) {
		st.PodIP = f.PodIP
		for _, ip := range f.PodIPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	initDone := true
	for i := range pod.Spec.InitContainers {
		cs := w.containerStatus(pod, &pod.Spec.InitContainers[i], v, true, initDone)
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			initDone = false
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	for i := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, w.containerStatus(pod, &pod.Spec.Containers[i], v, false, initDone))
	}
	st.Phase = w.phase(pod, v, &st)
	if w.failReason != "" {
		st.Reason, st.Message = w.failReason, w.failMessage
	}
	st.Conditions = w.podConditions(pod, &st, initDone)
	return st
}

// containerStatus is one container's status: the newest attempt's state, the one before
// as lastState.
func (w *worker) containerStatus(pod *corev1.Pod, c *corev1.Container, v *view, isInit, initDone bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	cur := v.newest(c.Name, "")
	wait := w.waiting[c.Name]
	if cur == nil {
		reason := reasonContainerCreating
		if isInit || !initDone {
			reason = reasonPodInitializing
		}
		if wait == nil {
			wait = &corev1.ContainerStateWaiting{Reason: reason}
		}
		cs.State.Waiting = wait
		cs.Started = new(bool)
		return cs
	}
	cs.RestartCount = int32(cur.attempt)
	cs.ContainerID = w.r.containerID(cur.id)
	cs.ImageID = cur.status.GetImageRef()
	started := false
	switch {
	case cur.running():
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: nanoTime(cur.status.GetStartedAt())}
		cs.Ready, started = w.readiness(c, cur, isInit)
	case cur.exited():
		term := terminated(w.r.containerID(cur.id), cur, w.terminationMessage(c, cur))
		if wait != nil {
			cs.State.Waiting = wait
			cs.LastTerminationState.Terminated = term
			// The exit is the last state; there is no earlier one to show.
			return finish(cs, started)
		}
		cs.State.Terminated = term
		cs.Ready = isInit && term.ExitCode == 0
	default:
		if wait == nil {
			wait = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
		}
		cs.State.Waiting = wait
	}
	if prev := v.previous(c.Name); prev != nil && prev.exited() {
		cs.LastTerminationState.Terminated = terminated(w.r.containerID(prev.id), prev, w.terminationMessage(c, prev))
	}
	return finish(cs, started)
}

func finish(cs corev1.ContainerStatus, started bool) corev1.ContainerStatus {
	cs.Started = &started
	return cs
}

// readiness is (ready, started) of a running container from its probes; a container the
// prober does not know is ready once running if it has no readiness or startup probe.
func (w *worker) readiness(c *corev1.Container, cur *ctr, isInit bool) (bool, bool) {
	if isInit {
		return false, true
	}
	if ps, ok := w.r.cfg.Prober.State(cur.id); ok {
		return ps.Ready && ps.Started, ps.Started
	}
	started := c.StartupProbe == nil
	return started && c.ReadinessProbe == nil, started
}

// terminated is an exited container's state; message is its termination message (the
// runtime's own message, if any, when that is empty).
func terminated(containerID string, c *ctr, message string) *corev1.ContainerStateTerminated {
	s := c.status
	if message == "" {
		message = s.GetMessage()
	}
	t := &corev1.ContainerStateTerminated{
		ExitCode:    s.GetExitCode(),
		Reason:      s.GetReason(),
		Message:     message,
		StartedAt:   nanoTime(s.GetStartedAt()),
		FinishedAt:  nanoTime(s.GetFinishedAt()),
		ContainerID: containerID,
	}
	if t.Reason == "" {
		t.Reason = "Error"
		if t.ExitCode == 0 {
			t.Reason = "Completed"
		}
	}
	return t
}

func nanoTime(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns))
}

// phase is the kubelet's getPhase. st is the computed status, or nil to compute it.
func (w *worker) phase(pod *corev1.Pod, v *view, st *corev1.PodStatus) corev1.PodPhase {
	if w.terminal != "" {
		return w.terminal
	}
	if st == nil {
		s := w.status(pod, v)
		return s.Phase
	}
	for _, cs := range st.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
			continue
		}
		failed := cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil && cs.State.Waiting != nil
		if failed && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		return corev1.PodPending
	}
	var unknown, running, waiting, stopped, succeeded int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		switch {
		case pod.Spec.RestartPolicy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		}
		return corev1.PodRunning
	}
	return corev1.PodPending
}

// podConditions are PodScheduled, Initialized, ContainersReady and Ready. Ready also needs
// every readiness gate's condition True in the pod's status, as set by whoever owns the gate
// in the cloud (the pod in the store carries it).
func (w *worker) podConditions(pod *corev1.Pod, st *corev1.PodStatus, initDone bool) []corev1.PodCondition {
	terminal := st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed
	var conds []corev1.PodCondition
	set := func(t corev1.PodConditionType, ok bool, reason, msg string) {
		s := corev1.ConditionFalse
		if ok {
			s, reason, msg = corev1.ConditionTrue, "", ""
		}
		c, had := w.conditions[t]
		if !had || c.Status != s {
			c = corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.NewTime(w.r.clock.Now().Truncate(time.Second))}
		}
		c.Reason, c.Message = reason, msg
		w.conditions[t] = c
		conds = append(conds, c)
	}
	set(corev1.PodScheduled, true, "", "")

	var incomplete []string
	for _, cs := range st.InitContainerStatuses {
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			incomplete = append(incomplete, cs.Name)
		}
	}
	set(corev1.PodInitialized, initDone, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incomplete, " ")))

	var unready []string
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	sort.Strings(unready)
	reason, msg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if terminal {
		reason = "PodCompleted"
		msg = ""
	}
	ready := len(unready) == 0 && !terminal && initDone
	set(corev1.ContainersReady, ready, reason, msg)
	if ready {
		if why := unmetGates(pod); why != "" {
			set(corev1.PodReady, false, "ReadinessGatesNotReady", why)
			return conds
		}
	}
	set(corev1.PodReady, ready, reason, msg)
	return conds
}

// unmetGates names the pod's readiness gates whose condition is missing or not True, in the
// kubelet's words, or "" when all are met.
func unmetGates(pod *corev1.Pod) string {
	var why []string
	for _, g := range pod.Spec.ReadinessGates {
		var found *corev1.PodCondition
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == g.ConditionType {
				found = &pod.Status.Conditions[i]
				break
			}
		}
		switch {
		case found == nil:
			why = append(why, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		case found.Status != corev1.ConditionTrue:
			why = append(why, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, found.Status))
		}
	}
	return strings.Join(why, ", ")
}
