// The Python package as a user installs it, for the tests that run Python: the wheel built offline
// with Debian's python3-build (from a copy of python/, so that concurrent builds never share a
// build/ directory), installed with pip into a virtual environment made with --system-site-packages
// from /usr/bin/python3, where Debian's python3-grpcio and python3-protobuf are.
import { execFile, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const source = fileURLToPath(new URL(".", import.meta.url));

/** Debian's interpreter; a pyenv or venv python3 earlier on PATH would not see Debian's packages. */
export const debianPython = "/usr/bin/python3";

/** The apt packages the Python tests need (examples/python-subscriber/CI-PACKAGES.txt lists them for CI). */
export const pythonPackages =
  "python3-grpcio python3-protobuf python3-build python3-setuptools python3-wheel python3-venv python3-pytest";

/** Why the Python tests cannot run here, or undefined when they can. */
export function missingPython(modules = ["grpc", "google.protobuf", "build", "setuptools", "wheel", "venv"]) {
  const probe = spawnSync(debianPython, ["-c", `import ${modules.join(", ")}, ensurepip`], {
    encoding: "utf8",
  });
  if (probe.status === 0) return undefined;
  return `${debianPython} cannot import ${modules.join(", ")} (${(probe.error?.message ?? probe.stderr).trim()}): apt-get install ${pythonPackages}`;
}

export interface PythonEnvironment {
  /** The built wheel. */
  wheel: string;
  /** The virtual environment's python, with the wheel installed. */
  python: string;
  /** Seconds the wheel took to build. */
  buildSeconds: number;
  remove(): void;
}

/** Builds the wheel and installs it into a fresh virtual environment, as python/README.md says. */
export async function installPythonPackage(): Promise<PythonEnvironment> {
  const dir = mkdtempSync(join(tmpdir(), "pgmesh-python-"));
  try {
    const copy = join(dir, "src");
    for (const entry of ["pyproject.toml", "README.md", "src"]) {
      cpSync(join(source, entry), join(copy, entry), {
        recursive: true,
        filter: (path) => !path.includes("__pycache__") && !path.endsWith(".egg-info"),
      });
    }
    const started = Date.now();
    await run(
      debianPython,
      ["-m", "build", "--no-isolation", "--wheel", "--outdir", join(dir, "dist"), copy],
      {
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    const buildSeconds = (Date.now() - started) / 1000;
    const wheel = join(dir, "dist", readdirSync(join(dir, "dist")).find((f) => f.endsWith(".whl")) ?? "");
    const venv = join(dir, "venv");
    await run(debianPython, ["-m", "venv", "--system-site-packages", venv]);
    // --no-index: grpcio and protobuf come from Debian's packages, nothing from the network.
    await run(join(venv, "bin/pip"), ["install", "--no-index", "--quiet", wheel], {
      env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1" },
    });
    return {
      wheel,
      python: join(venv, "bin/python"),
      buildSeconds,
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(
      `building or installing the Python package failed: ${String(error)}\n${stdout ?? ""}${stderr ?? ""}`,
    );
  }
}
