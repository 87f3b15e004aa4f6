#!/usr/bin/python3
# The bench's libvirt side (bench/peers.ts starts it with Debian's /usr/bin/python3, which has
# python3-libvirt and python3-libnbd). One long-lived libvirt connection: it defines and starts the
# guest-less TCG domain, injects "guest" writes with HMP qemu-io, runs `virsh backup-begin` and
# waits for the job's end (job-completed event, then no job), runs the libvirt pull peer (backupBegin
# + a plain libnbd dirty-extent reader into a sparse file + fsync + abortJob), and tears everything
# down. Protocol: one JSON request per line on stdin, one JSON reply per line on stdout; or, with
# --once JSON, one request run by a fresh process (the peer's end-to-end footing: Python's start,
# the imports and the connection included).
# Timings are taken here with time.monotonic() around exactly the peer's work. Bench only.

import json
import os
import subprocess
import sys
import threading
import time

import libvirt
import libvirt_qemu
import nbd

URI = 'qemu:///system'
conn = None
dom = None
dom_name = None
job_done = threading.Event()


def event_loop():
    while True:
        libvirt.virEventRunDefaultImpl()


def on_job_completed(_conn, _dom, _params, _opaque):
    job_done.set()


def no_job():
    return dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE


def wait_job_gone(timeout):
    """Waits for the job-completed event, then until libvirt reports no job (poll, 1 ms)."""
    if not job_done.wait(timeout):
        raise RuntimeError('the backup job did not complete within %d s' % timeout)
    deadline = time.monotonic() + timeout
    while not no_job():
        if time.monotonic() > deadline:
            raise RuntimeError('libvirt still reports a job %d s after job-completed' % timeout)
        time.sleep(0.001)


def connect():
    """(Re)opens the connection: other engineers' tests restart libvirtd on this shared machine, and
    a loaded host can miss keepalives, so keepalive is off and a dead connection is reopened."""
    global conn, dom
    conn = libvirt.open(URI)
    conn.setKeepAlive(-1, 0)
    if dom_name is not None:
        dom = conn.lookupByName(dom_name)
        conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, on_job_completed, None)


def ensure_connected():
    if conn is None or not conn.isAlive():
        connect()


def op_start(req):
    global dom, dom_name
    libvirt.virEventRegisterDefaultImpl()
    threading.Thread(target=event_loop, daemon=True).start()
    connect()
    dom = conn.defineXML(req['xml'])
    dom.create()
    dom_name = dom.name()
    conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, on_job_completed, None)
    return {'xml': dom.XMLDesc(0)}


def op_hmp(req):
    """Several HMP commands; any non-empty reply (qemu-io puts only errors there) is an error."""
    for cmd in req['cmds']:
        out = libvirt_qemu.qemuMonitorCommand(dom, cmd, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
        if out.strip():
            raise RuntimeError('HMP %s: %s' % (cmd, out.strip()))
    return {}


def op_qmp(req):
    out = libvirt_qemu.qemuMonitorCommand(dom, json.dumps(req['cmd']), 0)
    return {'reply': json.loads(out)}


def op_run_job(req):
    """Runs a command that starts a libvirt job (virsh backup-begin) and waits until the job is gone."""
    job_done.clear()
    t0 = time.monotonic()
    r = subprocess.run(req['argv'], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(req['argv'][:3]), r.returncode, (r.stderr or r.stdout).strip()))
    t1 = time.monotonic()
    wait_job_gone(req.get('timeout', 600))
    t2 = time.monotonic()
    return {'ms': (t2 - t0) * 1000, 'startMs': (t1 - t0) * 1000}


def op_pull(req):
    """libvirt pull + plain libnbd reader: backupBegin, block_status of the dirty bitmap, pread every
    dirty extent into a sparse file, fsync, abortJob, wait until the job is gone."""
    ctx = req['context']
    job_done.clear()
    marks = {}
    t0 = time.monotonic()
    dom.backupBegin(req['backupXml'], req['checkpointXml'], 0)
    marks['begin'] = time.monotonic()
    h = nbd.NBD()
    h.add_meta_context(ctx)
    h.connect_uri('nbd+unix:///%s?socket=%s' % (req['export'], req['socket']))
    size = h.get_size()
    extents = []

    def collect(metacontext, offset, entries, err):
        if metacontext != ctx:
            return 0
        pos = offset
        for i in range(0, len(entries), 2):
            length, flags = entries[i], entries[i + 1]
            if flags & 1:
                extents.append((pos, length))
            pos += length
        state['pos'] = pos
        return 0

    state = {'pos': 0}
    pos = 0
    while pos < size:
        state['pos'] = pos
        h.block_status(min(size - pos, 1 << 30), pos, collect)
        if state['pos'] <= pos:
            raise RuntimeError('block_status made no progress at %d' % pos)
        pos = state['pos']
    marks['map'] = time.monotonic()
    fd = os.open(req['out'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, size)
    copied = 0
    for off, length in extents:
        length = min(length, size - off)
        done = 0
        while done < length:
            n = min(length - done, 32 << 20)
            os.pwrite(fd, h.pread(n, off + done), off + done)
            done += n
        copied += length
    marks['read'] = time.monotonic()
    os.fsync(fd)
    os.close(fd)
    marks['fsync'] = time.monotonic()
    h.shutdown()
    dom.abortJob()
    wait_job_gone(req.get('timeout', 600))
    t1 = time.monotonic()
    steps = {}
    prev = t0
    for k in ('begin', 'map', 'read', 'fsync'):
        steps[k] = (marks[k] - prev) * 1000
        prev = marks[k]
    steps['abort'] = (t1 - prev) * 1000
    return {'ms': (t1 - t0) * 1000, 'bytes': copied, 'extents': len(extents), 'steps': steps}


def op_checkpoint_create(req):
    dom.checkpointCreateXML(req['xml'], 0)
    return {}


def op_checkpoint_delete(req):
    """Deletes checkpoints by name (bitmaps and metadata); a missing one is not an error."""
    for name in req['names']:
        try:
            dom.checkpointLookupByName(name).delete(0)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT:
                raise
    return {}


def op_checkpoint_names(_req):
    return {'names': [c.getName() for c in dom.listAllCheckpoints(0)]}


def op_stop(_req):
    """Aborts any job, destroys and undefines the domain with its checkpoint metadata."""
    global dom, dom_name
    if dom is None:
        return {}
    try:
        if not no_job():
            dom.abortJob()
    except libvirt.libvirtError:
        pass
    try:
        dom.destroy()
    except libvirt.libvirtError:
        pass
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
    dom = None
    dom_name = None
    return {}


OPS = {
    'start': op_start, 'hmp': op_hmp, 'qmp': op_qmp, 'run_job': op_run_job, 'pull': op_pull,
    'checkpoint_create': op_checkpoint_create, 'checkpoint_delete': op_checkpoint_delete,
    'checkpoint_names': op_checkpoint_names, 'stop': op_stop,
}


def once(request_json):
    """`libvirt_peer.py --once JSON`: the pull as an admin's script runs it, a fresh process that
    imports the bindings, connects, finds the domain, pulls and exits (the bench times spawn to exit)."""
    global dom_name
    req = json.loads(request_json)
    libvirt.virEventRegisterDefaultImpl()
    threading.Thread(target=event_loop, daemon=True).start()
    dom_name = req['domain']
    connect()
    reply = OPS[req['op']](req)
    sys.stdout.write(json.dumps(reply) + '\n')


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--once':
        return once(sys.argv[2])
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req['op'] != 'start':
                ensure_connected()
            reply = OPS[req['op']](req)
            reply.update({'id': req['id'], 'ok': True})
        except Exception as e:  # every failure goes back to the bench as one line
            reply = {'id': req['id'], 'ok': False, 'error': '%s: %s' % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()
    # stdin closed (the bench ended or died): leave nothing behind
    try:
        ensure_connected()
        op_stop({})
    except Exception:
        pass


if __name__ == '__main__':
    main()
