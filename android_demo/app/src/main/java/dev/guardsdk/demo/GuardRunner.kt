package dev.guardsdk.demo

import android.content.Context
import dev.guardsdk.core.GuardBundle
import dev.guardsdk.core.GuardException
import dev.guardsdk.core.Policy
import dev.guardsdk.core.Verdict
import dev.guardsdk.core.Window
import java.io.Closeable
import java.io.File
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/** One classification: the verdict and how long this call took, tokenization and every window included. */
class Classified(val verdict: Verdict, val latencyMs: Double)

/**
 * A verified bundle and its model.int8.pte loaded in ExecuTorch (XNNPACK). guard-core checks guard.json,
 * tokenizer.json and the .pte against their sha256 before ExecuTorch sees a byte; every failure is a
 * GuardException whose message the screens show as it is.
 */
class GuardRunner private constructor(val bundle: GuardBundle, private val module: Module, val loadMs: Double) :
    Closeable {

    /** The label logits of one window (batch 1: the graph's, and what dynamic int8 needs). */
    fun logits(window: Window): FloatArray {
        val shape = longArrayOf(1, window.length().toLong())
        val byName = mapOf(
            "input_ids" to window.inputIds,
            "attention_mask" to window.attentionMask(),
            "token_type_ids" to window.tokenTypeIds,
        )
        val inputs = bundle.manifest.inputs.map { EValue.from(Tensor.fromBlob(byName.getValue(it), shape)) }
        return module.forward(*inputs.toTypedArray())[0].toTensor().dataAsFloatArray
    }

    /** The verdict on a prompt, or on a response to it, at the bundle's threshold unless another is given. */
    fun classify(prompt: String, response: String?, threshold: Double = bundle.manifest.threshold): Classified {
        val start = System.nanoTime()
        val windows = bundle.encoder.scoredWindows(prompt, response)  // the text and each view the bundle declares
        val logits = Array(windows.size) { logits(windows[it].window) }
        val views = Array(windows.size) { windows[it].view }
        val verdict = Verdict.of(logits, views, bundle.manifest, threshold, Policy.NONE)
        return Classified(verdict, (System.nanoTime() - start) / 1e6)
    }

    override fun close() = module.destroy()

    companion object {
        const val FORMAT = "executorch"
        /** The .pte `guard-sdk android assets --precision` may have put in the app, in order of preference. */
        private val PRECISIONS = arrayOf("int8", "fp32", "int4")
        private const val ASSETS = "guard"

        /**
         * The bundle the APK carries, copied out of its assets into app storage (ExecuTorch loads from a file
         * path) whenever the app was installed or updated since the last copy.
         */
        fun installedBundle(context: Context): File {
            val names = context.assets.list(ASSETS).orEmpty()
            if ("guard.json" !in names) {
                throw GuardException(
                    GuardException.Reason.MANIFEST,
                    "this APK carries no guard bundle: run `guard-sdk android assets` and build the app again",
                )
            }
            val dir = File(context.filesDir, "guard-bundle")
            val stamp = File(dir, ".installed")
            val installed = context.packageManager.getPackageInfo(context.packageName, 0).lastUpdateTime.toString()
            if (!stamp.isFile || stamp.readText() != installed) {
                dir.deleteRecursively()
                dir.mkdirs()
                for (name in names) {
                    context.assets.open("$ASSETS/$name").use { input ->
                        File(dir, name).outputStream().use { input.copyTo(it) }
                    }
                }
                stamp.writeText(installed)
            }
            return dir
        }

        /** Verifies and loads the bundle in {@code dir}; ExecuTorch's own failures become GuardExceptions too. */
        fun open(dir: File): GuardRunner {
            val bundle = GuardBundle.open(dir, FORMAT, *PRECISIONS)
            val start = System.nanoTime()
            fun refusal(why: String, cause: Throwable? = null) = GuardException(
                GuardException.Reason.ARTIFACT_CHANGED,
                "ExecuTorch cannot load ${bundle.artifact.path}: $why. Export it with the executorch version this " +
                    "app was built with (gradle.properties: executorchVersion)",
                cause,
            )
            val module = try {
                Module.load(bundle.modelFile.absolutePath)
            } catch (e: RuntimeException) {
                throw refusal(e.message.orEmpty(), e)
            }
            // loadMethod returns ExecuTorch's error code (0 is Ok); older releases threw instead.
            val status = try {
                module.loadMethod("forward")
            } catch (e: RuntimeException) {
                module.destroy()
                throw refusal(e.message.orEmpty(), e)
            }
            if (status != 0) {
                module.destroy()
                throw refusal("error 0x${Integer.toHexString(status)} loading its forward method")
            }
            return GuardRunner(bundle, module, (System.nanoTime() - start) / 1e6)
        }
    }
}
