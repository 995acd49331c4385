"""A seccomp-BPF deny-list for the jailed child (x86_64; elsewhere nothing is installed).

Denied with EPERM: new namespaces (unshare, setns, clone with CLONE_NEW* flags), mounts and
the new mount API, ptrace and cross-process memory access, keyrings, bpf, perf events,
userfaultfd, io_uring, kernel modules, kexec, swap, reboot, handle-based opens, and x32
system calls. clone3 answers ENOSYS so glibc falls back to clone, whose flags a classic BPF
filter can inspect. A syscall from another architecture kills the process.
"""

from __future__ import annotations

import ctypes
import os
import struct

from sandbox_service import linux

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
EPERM, ENOSYS = 1, 38
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2

# BPF opcodes
_LD_W_ABS = 0x20   # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35      # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45     # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06      # BPF_RET | BPF_K

SYSCALL_CLONE, SYSCALL_CLONE3 = 56, 435
DENIED_X86_64 = {
    "ptrace": 101, "syslog": 103, "pivot_root": 155, "chroot": 161, "acct": 163, "mount": 165,
    "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
}
CLONE_NAMESPACE_FLAGS = (0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000
                         | 0x10000000 | 0x20000000 | 0x40000000)


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def filter_program() -> list[bytes]:
    """The BPF instructions (seccomp_data: nr at offset 0, arch at 4, args[0] at 16)."""
    deny = SECCOMP_RET_ERRNO | EPERM
    prog = [_insn(_LD_W_ABS, 0, 0, 4),
            _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
            _insn(_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
            _insn(_LD_W_ABS, 0, 0, 0),
            _insn(_JGE_K, 0, 1, X32_SYSCALL_BIT),
            _insn(_RET_K, 0, 0, deny)]
    for nr in sorted(DENIED_X86_64.values()):
        prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, deny)]
    prog += [_insn(_JEQ_K, 0, 1, SYSCALL_CLONE3),
             _insn(_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS),
             _insn(_JEQ_K, 0, 3, SYSCALL_CLONE),
             _insn(_LD_W_ABS, 0, 0, 16),
             _insn(_JSET_K, 0, 1, CLONE_NAMESPACE_FLAGS),
             _insn(_RET_K, 0, 0, deny),
             _insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    return prog


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


# Built once, in the zygote: every page a forked child writes is a copy-on-write fault (~2 us
# here), so the child only points the kernel at this ready-made program.
_PROGRAM = filter_program() if os.uname().machine == "x86_64" else []
_FPROG = _SockFprog(len(_PROGRAM), b"".join(_PROGRAM))
_FPROG_ADDRESS = ctypes.addressof(_FPROG)


def install() -> bool:
    """Install the filter on the calling thread (needs no_new_privs). False if not x86_64."""
    if not _PROGRAM:
        return False
    linux.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, _FPROG_ADDRESS)
    return True
