package dev.guardsdk.demo

import android.app.Activity
import android.content.Intent
import android.os.Bundle
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import dev.guardsdk.core.GuardException
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Type a prompt, and optionally the assistant's response, and see the verdict: P(unsafe), each harm category's
 * score (the violations marked), the threshold, the label and the latency of this call. The guard loads and runs off the main thread; every failure (a damaged
 * bundle, a tokenizer the app does not run, an empty prompt) is a message on screen, never a crash.
 */
class MainActivity : Activity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var runner: GuardRunner? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        val classify = findViewById<Button>(R.id.classify)
        classify.setOnClickListener { classify() }
        findViewById<Button>(R.id.benchmark).setOnClickListener {
            startActivity(Intent(this, BenchmarkActivity::class.java))
        }
        worker.execute {
            try {
                val loaded = GuardRunner.open(GuardRunner.installedBundle(this))
                runner = loaded
                val m = loaded.bundle.manifest
                val line = "%s · %s · threshold %.4f · max %d tokens · loaded in %.0f ms"
                show(R.id.bundle, String.format(Locale.ROOT, line,
                    m.name, loaded.bundle.artifact.path, m.threshold, m.maxLength, loaded.loadMs))
                runOnUiThread { classify.isEnabled = true }
            } catch (e: GuardException) {
                show(R.id.bundle, "No guard loaded")
                show(R.id.error, e.message.orEmpty())
            }
        }
    }

    private fun classify() {
        val prompt = findViewById<EditText>(R.id.prompt).text.toString()
        val responseText = findViewById<EditText>(R.id.response).text.toString()
        show(R.id.error, "")
        if (prompt.isBlank()) {
            show(R.id.error, getString(R.string.empty_prompt))
            return
        }
        val loaded = runner ?: return
        worker.execute {
            try {
                val result = loaded.classify(prompt, responseText.ifEmpty { null })
                val v = result.verdict
                show(R.id.verdict, if (v.unsafe) "UNSAFE" else "safe")
                // Each category the bundle scores, highest first, a violation marked: "hate  0.912 !".
                val categories = v.categories.entries.sortedByDescending { it.value }.joinToString("") {
                    String.format(Locale.ROOT, "\n  %-26s %.3f%s", it.key, it.value,
                        if (it.key in v.violations) " !" else "")
                }
                show(R.id.details, String.format(Locale.ROOT,
                    "P(unsafe)  %.4f\nthreshold  %.4f\nlabel      %s\nwindows    %d\nlatency    %.1f ms%s",
                    v.score, v.threshold, v.label, v.windows, result.latencyMs,
                    if (categories.isEmpty()) "" else "\ncategories (! over its threshold)$categories"))
            } catch (e: GuardException) {
                show(R.id.error, e.message.orEmpty())
            } catch (e: RuntimeException) { // ExecuTorch's own errors at run time
                show(R.id.error, "the model failed on this input: ${e.message}")
            }
        }
    }

    private fun show(id: Int, text: String) = runOnUiThread { findViewById<TextView>(id).text = text }

    override fun onDestroy() {
        worker.execute { runner?.close() }
        worker.shutdown()
        super.onDestroy()
    }
}
