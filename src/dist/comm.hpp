#pragma once
// Internal: weft::dist's MPI state and its point-to-point exchanges, each waited for with the
// timeout of InitOptions so that a dead or hung rank gives an error that names it, not a hang.
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace weft::dist::detail {

/// MPI is process-wide state: this mirrors it (the communicator weft's own messages use, a
/// duplicate of MPI_COMM_WORLD so that they never match a user's, and the timeout).
struct Comm {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{0};
  bool failed = false;  // a collective timed out: MPI_Finalize would wait for the dead rank
};
Comm& comm();  // the one instance, for the process's MPI lifetime

/// Throws a dist::Error naming `op`, `call` and MPI's message unless `code` is MPI_SUCCESS.
void check(int code, const char* op, const char* call);

/// A batch of non-blocking sends and receives, waited for together.
class Exchange {
 public:
  explicit Exchange(const char* op) : op_(op) {}
  void send(const void* data, std::size_t bytes, int peer, int tag);
  void recv(void* data, std::size_t bytes, int peer, int tag);
  /// Waits until every message went through; after the timeout a TimeoutError naming the ranks
  /// whose messages are still outstanding.
  void wait();

 private:
  const char* op_;
  std::vector<MPI_Request> requests_;
  std::vector<int> peers_;
};

/// Every rank's `value`, in rank order (an all-gather of one word, point to point).
[[nodiscard]] std::vector<std::uint32_t> all_gather(std::uint32_t value, const char* op);

}  // namespace weft::dist::detail
