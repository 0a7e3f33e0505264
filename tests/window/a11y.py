#!/usr/bin/python3
"""Reads and drives a program's window through the desktop's accessibility
tree (AT-SPI), as a screen reader does: what a person sees is what this
prints, and a button is pressed the way assistive software presses it.

    a11y.py dump PID           every node: role, name, text (tab-separated)
    a11y.py press PID NAME     presses the button named NAME
    a11y.py focus PID NAME     focuses the text box labelled NAME
    a11y.py close PID          asks PID's window to close, as a window
                               manager's close button does (X11
                               WM_DELETE_WINDOW; Xvfb has no window manager)
    a11y.py maptime PROGRAM [ARG...]
                               starts PROGRAM and prints the milliseconds
                               until its first window is mapped (shown),
                               from the X server's own MapNotify event; then
                               stops it

Exit status 3: no window of that process is in the tree (yet); 4: no
such button or box.
"""
import sys

import pyatspi


def app_of(pid):
    desktop = pyatspi.Registry.getDesktop(0)
    for i in range(desktop.childCount):
        app = desktop.getChildAtIndex(i)
        try:
            if app is not None and app.get_process_id() == pid:
                return app
        except Exception:
            continue
    return None


def walk(node, depth=0):
    if node is None or depth > 60:
        return
    yield node
    try:
        children = [node.getChildAtIndex(i) for i in range(node.childCount)]
    except Exception:
        return
    for child in children:
        yield from walk(child, depth + 1)


def text_of(node):
    try:
        t = node.queryText()
        return t.getText(0, t.characterCount)
    except Exception:
        return ""


def clean(s):
    return (s or "").replace("\t", " ").replace("\n", " ")


def close(pid):
    from Xlib import X, display, protocol

    d = display.Display()
    net_wm_pid = d.intern_atom("_NET_WM_PID")
    protocols = d.intern_atom("WM_PROTOCOLS")
    delete = d.intern_atom("WM_DELETE_WINDOW")

    def windows(w):
        for c in w.query_tree().children:
            yield c
            yield from windows(c)

    # Every viewable window of the process: a toolkit may own more than
    # one (only its main window takes the message).
    sent = False
    for w in windows(d.screen().root):
        try:
            p = w.get_full_property(net_wm_pid, X.AnyPropertyType)
            viewable = w.get_attributes().map_state == X.IsViewable
        except Exception:
            continue
        if p is not None and p.value[0] == pid and viewable:
            ev = protocol.event.ClientMessage(
                window=w,
                client_type=protocols,
                data=(32, [delete, X.CurrentTime, 0, 0, 0]),
            )
            w.send_event(ev)
            sent = True
    d.flush()
    return sent


def maptime(argv):
    import subprocess
    import time

    from Xlib import X, display

    d = display.Display()
    root = d.screen().root
    root.change_attributes(event_mask=X.SubstructureNotifyMask)
    net_wm_pid = d.intern_atom("_NET_WM_PID")
    d.sync()
    t0 = time.monotonic()
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        while time.monotonic() - t0 < 30:
            ev = d.next_event()
            if ev.type != X.MapNotify:
                continue
            p = ev.window.get_full_property(net_wm_pid, X.AnyPropertyType)
            if p is None or p.value[0] == child.pid:
                print(f"{(time.monotonic() - t0) * 1e3:.1f}")
                return
        sys.exit(5)
    finally:
        child.kill()
        child.wait()


def main():
    if sys.argv[1] == "maptime":
        maptime(sys.argv[2:])
        return
    cmd, pid = sys.argv[1], int(sys.argv[2])
    if cmd == "close":
        sys.exit(0 if close(pid) else 3)
    app = app_of(pid)
    if app is None:
        sys.exit(3)
    if cmd == "dump":
        for n in walk(app):
            # A node can vanish while it is read (the window redraws):
            # leave it out; the caller reads again.
            try:
                print(f"{n.getRoleName()}\t{clean(n.name)}\t{clean(text_of(n))}")
            except Exception:
                continue
        return
    want = sys.argv[3]
    for n in walk(app):
        if cmd == "press" and n.getRoleName() == "push button" and n.name == want:
            n.queryAction().doAction(0)
            return
        if cmd == "focus" and n.getRoleName() in ("entry", "text") and n.name == want:
            n.queryComponent().grabFocus()
            return
    sys.exit(4)


if __name__ == "__main__":
    main()
