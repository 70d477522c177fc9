#include "process/remote_call.h"

#include <string.h>

#include <optional>

#include "arch/x86_64/sigreturn_frame.h"
#include "common/error.h"

namespace graft {

std::string RemoteCallResult::describe() const {
  switch (status) {
    case Status::Returned:
      return fmt::format("returned {}", static_cast<int32_t>(value));
    case Status::Crashed:
      return fmt::format("crashed with {} at pc {:#x} (fault address {:#x}) on thread {}",
                         sigabbrev_np(signal) ? std::string("SIG") + sigabbrev_np(signal)
                                              : std::to_string(signal),
                         fault_pc, fault_address, tid);
    case Status::TimedOut:
      return fmt::format("did not return in time on thread {}", tid);
  }
  return "?";
}

namespace {

// A call that ended in a signal other than the expected return.
void set_crashed(RemoteCallResult& result, const Tracer::RunOutcome& run, const arch::Registers& after) {
  result.status = RemoteCallResult::Status::Crashed;
  result.signal = run.signal;
  result.fault_pc = arch::pc(after);
  result.fault_address = reinterpret_cast<uint64_t>(run.info.si_addr);
}

// The call through the thunk and a signal frame; empty if the thread's
// state cannot be framed (then the caller uses the trap).
std::optional<RemoteCallResult> call_through_thunk(Tracer& tracer, const ProcessMemory& memory,
                                                   pid_t tid, RemoteAddress function,
                                                   RemoteAddress thunk, double timeout_s,
                                                   const uint64_t (&args)[6]) {
  const arch::Registers saved = tracer.registers(tid);
  const arch::Registers resume = arch::with_restart_applied(saved);
  Bytes xstate;
  uint64_t mask = 0;
  try {
    xstate = tracer.extended_state(tid);
    mask = tracer.signal_mask(tid);
  } catch (const Error&) {
    return std::nullopt;
  }
  auto frame = arch::build_sigreturn_frame(resume, mask, xstate,
                                           arch::sp(resume) - arch::kRedZone - 256, thunk.value);
  if (!frame) return std::nullopt;
  memory.write({frame->address}, frame->bytes);
  arch::Registers regs = resume;
  arch::CallFrame call = arch::prepare_call(regs, function.value, frame->address + 8, args);
  if (call.return_address_slot != frame->address) return std::nullopt;  // never: both 8 mod 16

  RemoteCallResult result;
  result.tid = tid;
  auto restore = [&] {
    tracer.set_registers(tid, resume);
    tracer.set_extended_state(tid, xstate);
  };
  tracer.set_registers(tid, regs);
  try {
    auto run = tracer.run_until_fault(tid, static_cast<long>(timeout_s * 1e6),
                                      thunk.value + arch::kCallReturnThunkSyscallEnd);
    if (run.returned && !run.signal) {
      result.value = run.value;  // `restore` below puts the thread back
    } else if (run.timed_out && run.signal == 0) {
      result.status = RemoteCallResult::Status::TimedOut;
    } else {
      set_crashed(result, run, tracer.registers(tid));
    }
  } catch (...) {
    try {
      restore();
    } catch (...) {
    }
    throw;
  }
  restore();
  return result;
}

}  // namespace

RemoteCallResult remote_call(Tracer& tracer, const ProcessMemory& memory, pid_t tid,
                             RemoteAddress function, RemoteAddress trap, double timeout_s,
                             const uint64_t (&args)[6], RemoteAddress thunk) {
  if (thunk.value)
    if (auto r = call_through_thunk(tracer, memory, tid, function, thunk, timeout_s, args)) return *r;
  RemoteCallResult result;
  result.tid = tid;
  const arch::Registers saved = tracer.registers(tid);
  arch::Registers regs = saved;
  // Below the thread's own frame and its red zone; the callee's frames grow
  // down from there, in stack the thread is not using.
  uint64_t top = arch::sp(saved) - arch::kRedZone - 256;
  arch::CallFrame frame = arch::prepare_call(regs, function.value, top, args);
  uint64_t ret = trap.value;
  memory.write({frame.return_address_slot}, {reinterpret_cast<const uint8_t*>(&ret), sizeof ret});
  tracer.set_registers(tid, regs);
  try {
    auto run = tracer.run_until_fault(tid, static_cast<long>(timeout_s * 1e6));
    arch::Registers after = tracer.registers(tid);
    if (run.timed_out && run.signal == 0) {
      result.status = RemoteCallResult::Status::TimedOut;
    } else if (run.signal == SIGSEGV && arch::pc(after) == trap.value) {
      result.status = RemoteCallResult::Status::Returned;
      result.value = arch::call_result(after);
    } else {
      set_crashed(result, run, after);
    }
  } catch (...) {
    try {
      tracer.set_registers(tid, saved);
    } catch (...) {
    }
    throw;
  }
  tracer.set_registers(tid, saved);
  return result;
}

}  // namespace graft
