#pragma once
// weft::dist: data-parallel training across processes on MPI. A program starts MPI once, with
// dist::init (or the RAII dist::Session), and every process, a *rank*, then runs the same steps
// on its share of each batch; the collectives of dist/collectives.hpp combine the ranks' trees.
//
//   int main(int argc, char** argv) {
//     weft::dist::Session mpi(argc, argv);            // MPI_Init ... MPI_Finalize
//     if (weft::dist::rank() == 0) std::cout << weft::dist::size() << " ranks\n";
//   }
//
// Run it with `mpirun -np 2 ./program` (or Slurm's srun); started without mpirun it is one rank.
#include <chrono>

namespace weft::dist {

struct InitOptions {
  /// How long a collective waits for every other rank before it gives up: the job then stops
  /// with a dist::TimeoutError naming the ranks that never answered (a rank that died or hangs),
  /// instead of hanging. Long enough for the slowest step between two collectives.
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
};

/// Starts MPI (MPI_Init_thread, funneled: only the thread that called init makes MPI calls;
/// weft's OpenMP kernels never do). Calling it twice, or after finalize, is a dist::Error.
void init(int& argc, char**& argv, InitOptions options = {});
/// Ends MPI after a barrier, so that no rank leaves while another still sends. After a collective
/// failed (dist::TimeoutError), it aborts the job instead: MPI_Finalize would wait for the dead rank.
void finalize();
/// Aborts every rank of the job with `exit_code` (MPI_Abort); use it when one rank cannot go on.
[[noreturn]] void abort(int exit_code);

/// Whether init was called and finalize not yet.
[[nodiscard]] bool initialized() noexcept;
/// This process's rank, 0 to size() - 1; 0 and 1 when MPI is not initialized (one process).
[[nodiscard]] int rank();
[[nodiscard]] int size();
/// Returns when every rank has called it (with the timeout of InitOptions).
void barrier();

/// init in its constructor, finalize in its destructor (abort when the destructor runs during
/// the unwinding of an exception, since the other ranks may be waiting in a collective).
class Session {
 public:
  Session(int& argc, char**& argv, InitOptions options = {}) { init(argc, argv, options); }
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  [[nodiscard]] int rank() const { return dist::rank(); }
  [[nodiscard]] int size() const { return dist::size(); }
};

}  // namespace weft::dist
