package dev.guardsdk.demo

import android.app.Activity
import android.app.ActivityManager
import android.os.Build
import android.os.Bundle
import android.os.Debug
import android.util.Log
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import dev.guardsdk.core.GuardException
import dev.guardsdk.core.TextEncoder
import java.io.File
import java.util.Locale
import java.util.concurrent.Executors
import org.json.JSONArray
import org.json.JSONObject

/**
 * Load time, first call, then RUNS timed classify calls after WARMUP on a text of TOKENS tokens, and the
 * memory the guard added (PSS). Writes benchmark_results.json with the field names of ExecuTorch's benchmark
 * app (so its tooling reads it) and guard_run.json with every timed call, which `guard-sdk android report`
 * turns into `guard-sdk bench`'s report. From adb (benchmarks/android_bench.sh):
 *   am start -W -n dev.guardsdk.demo/.BenchmarkActivity --ei runs 50 --ei warmup 5 --ei tokens 128 \
 *     --es bundle_dir /data/local/tmp/guard-bundle --ez autorun true
 */
class BenchmarkActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_benchmark)
        val extras = intent.extras
        extras?.let {
            for ((id, key) in listOf(R.id.runs to "runs", R.id.warmup to "warmup", R.id.tokens to "tokens")) {
                if (it.containsKey(key)) findViewById<EditText>(id).setText(it.getInt(key).toString())
            }
        }
        val start = findViewById<Button>(R.id.start)
        start.setOnClickListener { start.isEnabled = false; launch(extras?.getString("bundle_dir"), false) }
        if (extras?.getBoolean("autorun") == true) {
            start.isEnabled = false
            launch(extras.getString("bundle_dir"), true)
        }
    }

    private fun number(id: Int, name: String, least: Int): Int {
        val value = findViewById<EditText>(id).text.toString().toIntOrNull()
        if (value == null || value < least) {
            throw GuardException(GuardException.Reason.INPUT, "$name must be a whole number of at least $least")
        }
        return value
    }

    private fun launch(bundleDir: String?, finishAfter: Boolean) {
        val settings = try {
            Triple(
                number(R.id.runs, "runs", 1),
                number(R.id.warmup, "warm-up runs", 0),
                number(R.id.tokens, "tokens", 1),
            )
        } catch (e: GuardException) {
            show(R.id.error, e.message.orEmpty())
            findViewById<Button>(R.id.start).isEnabled = true
            return
        }
        show(R.id.report, "running…")
        worker.execute {
            val out = getExternalFilesDir(null) ?: filesDir
            try {
                val report = run(bundleDir, settings.first, settings.second, settings.third, out)
                show(R.id.report, report)
                Log.i(TAG, "done: ${File(out, RESULTS)}")
            } catch (e: GuardException) {
                writeFailure(out, e)
                show(R.id.error, e.message.orEmpty())
                Log.e(TAG, "failed: ${e.message}")
            }
            runOnUiThread { if (finishAfter) finish() else findViewById<Button>(R.id.start).isEnabled = true }
        }
    }

    private fun run(bundleDir: String?, runs: Int, warmup: Int, tokens: Int, out: File): String {
        val pssIdle = Debug.getPss()
        val loadStart = System.nanoTime()
        val dir = bundleDir?.let(::File) ?: GuardRunner.installedBundle(this)
        GuardRunner.open(dir).use { runner ->
            val loadMs = (System.nanoTime() - loadStart) / 1e6
            val text = textOfTokens(runner.bundle.encoder, tokens)
            val windows = runner.bundle.encoder.windows(text, null)
            val firstMs = runner.classify(text, null).latencyMs
            repeat(warmup) { runner.classify(text, null) }
            val latencies = DoubleArray(runs) { runner.classify(text, null).latencyMs }
            val pssMb = (Debug.getPss() - pssIdle) / 1024.0
            val sorted = latencies.sorted()
            val metrics = linkedMapOf(
                "model_load_time(ms)" to loadMs,
                "load_status" to 0.0,
                "first_inference_latency(ms)" to firstMs,
                "avg_inference_latency(ms)" to latencies.average(),
                "trimmean_inference_latency(ms)" to trimmedMean(sorted),
                "p50_inference_latency(ms)" to percentile(sorted, 50.0),
                "p90_inference_latency(ms)" to percentile(sorted, 90.0),
                "ram_pss_usage(mb)" to pssMb,
            )
            val m = runner.bundle.manifest
            val precision = runner.bundle.artifact.precision
            File(out, RESULTS).writeText(metricsJson(m.name, precision, metrics).toString(2))
            val record = JSONObject()
                .put("bundle", m.name).put("artifact", runner.bundle.artifact.path)
                .put("artifact_bytes", runner.bundle.artifact.bytes).put("precision", precision)
                .put("threads", 0) // ExecuTorch's default thread pool
                .put("tokens", tokens).put("tokens_per_input", windows.sumOf { it.length() })
                .put("windows_per_input", windows.size)
                .put("window_lengths", JSONArray(windows.map { it.length() }))
                .put("warmup", warmup).put("latencies_ms", JSONArray(latencies.toList()))
            File(out, RUN).writeText(record.toString(2))
            return metrics.entries.joinToString("\n") { (k, v) -> String.format(Locale.ROOT, "%-32s %10.2f", k, v) } +
                "\n\nwrote ${File(out, RESULTS)}"
        }
    }

    /** ExecuTorch's benchmark app's list: one object per metric, with the model and the device. */
    private fun metricsJson(name: String, precision: String, metrics: Map<String, Double>): JSONArray {
        val memory = ActivityManager.MemoryInfo()
        (getSystemService(ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(memory)
        val device = JSONObject().put("device", Build.BRAND).put("arch", Build.MODEL)
            .put("os", "Android ${Build.VERSION.RELEASE}")
            .put("totalMem", memory.totalMem).put("availMem", memory.availMem)
        val model = JSONObject().put("name", name).put("backend", "xnnpack").put("quantization", precision)
        return JSONArray(metrics.map { (metric, value) ->
            JSONObject().put("benchmarkModel", model).put("metric", metric).put("actualValue", value)
                .put("targetValue", 0.0).put("deviceInfo", device)
        })
    }

    private fun writeFailure(out: File, e: GuardException) {
        val metrics = linkedMapOf("load_status" to -1.0)
        File(out, RESULTS).writeText(metricsJson("unloaded", "", metrics).toString(2))
        File(out, RUN).writeText(JSONObject().put("error", e.message).toString(2))
    }

    private fun show(id: Int, text: String) = runOnUiThread { findViewById<TextView>(id).text = text }

    override fun onDestroy() {
        worker.shutdown()
        super.onDestroy()
    }

    companion object {
        private const val TAG = "GuardBench"
        const val RESULTS = "benchmark_results.json"
        const val RUN = "guard_run.json"
        private val FILLER = listOf("the", "cat", "sat", "on", "a", "mat", "and", "we", "saw", "it", "in", "my",
            "old", "house", "by", "sea")

        /** guard_sdk/bench/inputs.py's text_of_tokens, word for word: the same text `guard-sdk bench` times. */
        fun textOfTokens(encoder: TextEncoder, tokens: Int): String {
            val specials = encoder.maxLength - encoder.singleBudget
            val words = mutableListOf<String>()
            while (true) {
                val text = words.joinToString(" ")
                val count = if (words.isEmpty()) specials else encoder.windows(text, null).sumOf { it.length() }
                if (count >= tokens) return text
                // Python's extend reads len(words) as it grows, so the index moves by 2 a word: the same here.
                repeat(maxOf(1, (tokens - count) / 2)) { words.add(FILLER[(words.size + it) % FILLER.size]) }
            }
        }

        /** numpy.percentile's default (linear) on sorted values, as guard_sdk/bench/stats.py reports. */
        fun percentile(sorted: List<Double>, q: Double): Double {
            val rank = q / 100 * (sorted.size - 1)
            val low = rank.toInt()
            val high = minOf(low + 1, sorted.size - 1)
            return sorted[low] + (sorted[high] - sorted[low]) * (rank - low)
        }

        /** The mean without 10% of the sorted values at each end (stats.py's TRIM, and ExecuTorch's app's). */
        fun trimmedMean(sorted: List<Double>): Double {
            val cut = (sorted.size * 0.1).toInt()
            return sorted.subList(cut, sorted.size - cut).average()
        }
    }
}
