process MAMBADNA_CLASSIFY {
    tag "$meta.id"
    label 'process_medium'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    // built from the repository's Dockerfile; the gpu profile swaps in Dockerfile.cuda's image
    container "mambadna:0.1.0"

    input:
    tuple val(meta), path(reads)
    tuple val(meta2), path(model)

    output:
    tuple val(meta), path("${prefix}.classify.tsv"), emit: calls
    tuple val(meta), path("${prefix}.summary.tsv") , emit: summary
    path "versions.yml"                            , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def device = task.accelerator?.request ? 'cuda' : 'cpu'
    """
    mambadna classify \\
        -i $model \\
        $args \\
        -t $task.cpus \\
        -x $device \\
        --summary ${prefix}.summary.tsv \\
        -o ${prefix}.classify.tsv \\
        $reads

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mambadna: \$(mambadna --version | sed 's/^mambadna //')
    END_VERSIONS
    """

    stub:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.classify.tsv
    touch ${prefix}.summary.tsv

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mambadna: \$(mambadna --version | sed 's/^mambadna //')
    END_VERSIONS
    """
}
